"""``docqa bench``: how far a model reads past its trained window, and with which RoPE method.

- :mod:`.rope_ppl` — perplexity of one fixed slice against the context before it (``docqa bench rope``);
- :mod:`.needle` — needle in a haystack over lengths × depths × methods (``docqa bench needle``);
- :mod:`.plots` — ``ppl_vs_length.png`` and ``needle_<method>.png``;
- :mod:`.common` — grids, text, the resumable log of finished cells, progress and time estimates.

Nothing here is imported by ``docqa --help``; torch is loaded with the model.
"""
