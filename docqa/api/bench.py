"""``bench_rope`` and ``bench_needle``: the context-extension benchmarks of ``docqa bench`` on the user's model."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..generators import GeneratorConfig
from ..paths import output_folder
from .indexes import generator_config


def bench_rope(
    *,
    lengths: list[int],
    methods: list[str],
    out: str | Path,
    text: str | Path | None = None,
    tail: int = 1024,
    samples: int = 1,
    model: str | None = None,
    device: str | None = None,
    generator: GeneratorConfig | None = None,
    fresh: bool = False,
    reuse_identical: bool = True,
    progress=None,
):
    """Perplexity of a fixed final slice against context length, per rope method (``docqa bench rope``); finished
    cells in ``out`` are kept, so an interrupted run resumes. Returns a
    :class:`docqa.bench.rope_ppl.RopeBenchResult`."""
    from ..bench.common import read_text
    from ..bench.rope_ppl import RopeBenchConfig, run_rope
    from ..generators import load_generator

    body, desc = read_text(Path(text) if text is not None else None)
    cfg = RopeBenchConfig(lengths=lengths, methods=methods, tail=tail, samples=samples, fresh=fresh,
                          reuse_identical=reuse_identical)
    gen = load_generator(generator_config(model, device, generator))
    return run_rope(gen, body, cfg, output_folder(out), text_desc=desc, progress=progress)


def bench_needle(
    *,
    lengths: list[int],
    depths: list[float],
    methods: list[str],
    out: str | Path,
    text: str | Path | None = None,
    forms: list[str] | None = None,
    needle: str | None = None,
    question: str | None = None,
    answer: str | None = None,
    answer_start: str | None = None,
    model: str | None = None,
    device: str | None = None,
    generator: GeneratorConfig | None = None,
    fresh: bool = False,
    progress=None,
):
    """Needle in a haystack over lengths × depths × rope methods, in the question and passkey forms
    (``docqa bench needle``). Returns a :class:`docqa.bench.needle.NeedleBenchResult`."""
    from ..bench import needle as nb
    from ..bench.common import read_text
    from ..generators import load_generator

    if needle is not None and answer is None:
        raise ConfigError("With --needle, say what counts as found with --answer (a string the needle holds).")
    body, desc = read_text(Path(text) if text is not None else None)
    cfg = nb.NeedleBenchConfig(lengths=lengths, depths=depths, methods=methods, forms=forms or list(nb.FORMS),
                               needle=needle or nb.DEFAULT_NEEDLE, question=question or nb.DEFAULT_QUESTION,
                               answer=answer or nb.DEFAULT_ANSWER, answer_start=answer_start, fresh=fresh)
    gen = load_generator(generator_config(model, device, generator))
    return nb.run_needle(gen, body, cfg, output_folder(out), text_desc=desc, progress=progress)

