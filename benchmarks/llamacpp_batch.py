"""Several sequences decoding together in llama.cpp: does a batch pay on this CPU, and are the answers the same?

    .venv/bin/python benchmarks/llamacpp_batch.py --records RESULTS.jsonl [--limit 16] [--batches 2,4,8]
        [--max-new-tokens 48] [--model qwen2.5-coder-1.5b] [--threads 2]

``RESULTS.jsonl`` is a ``docqa eval --out`` records file of the rag strategy (each record holds its question and the
passages rag read, e.g. ``benchmarks/results/paired/topk-fin-qwen15.jsonl``); each prompt is rebuilt with docqa's
own system and user turns (``docqa.prompts``) and the model's chat template.

docqa's llama.cpp backend answers a batch one prompt after another (``LlamaCppGenerator.generate_batch``). This
measures what the alternative would give: every prompt prefilled alone into its own sequence of one context
(``n_seq_max`` = batch), then one ``llama_decode`` per step for all live sequences, greedy, until each ends; against
each prompt decoded alone in a context of its own. Both arms prefill with llama.cpp and time decode steps only.
Per-sequence KV streams (``kv_unified`` off) and one shared stream are both run. Reports decode tokens/s and how many
answers equal the ones decoded alone. Writes ``benchmarks/results/llamacpp_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_BATCH = 512


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--batches", default="2,4,8")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "llamacpp_batch.json")
    args = ap.parse_args()

    from docqa.errors import DocQAError

    try:
        run(args)
    except DocQAError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def run(args: argparse.Namespace) -> None:
    import llama_cpp
    import numpy as np
    from llama_cpp import _internals

    from docqa import prompts
    from docqa.environment import cpu_name
    from docqa.errors import ConfigError
    from docqa.generators.base import render_chat
    from docqa.generators.llamacpp_gguf import ChatTemplate, Silence, gguf_facts, gguf_path

    if not args.records.is_file():
        raise ConfigError(f"--records {args.records}: no such file; write one with docqa eval --strategies rag --out.")
    recs = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    recs = [r for r in recs if r.get("strategy") == "rag" and r.get("passages")][: args.limit]
    if not recs or not all(p.get("text") for r in recs for p in r["passages"]):
        raise ConfigError(f"--records {args.records}: no rag records with their passages' text.")

    Silence.install()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers, params.use_mmap = 0, True
    model = _internals.LlamaModel(path_model=str(gguf_path(args.model)), params=params, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(model.model)
    n_vocab = model.n_vocab()
    facts = gguf_facts(model.metadata(), args.model)

    def piece(tok: int) -> str:  # as LlamaCppGenerator._piece
        return model.token_to_piece(tok, special=True).decode("utf-8", errors="ignore") if tok >= 0 else ""

    template = ChatTemplate(facts["template"], piece(model.token_bos()), piece(model.token_eos()))
    rows = []
    for r in recs:  # the rag prompt as docqa writes it (AskConfig's default style, no length hint)
        user = prompts.rag_user(r["question"], [(p["file"], p["text"]) for p in r["passages"]])
        text = render_chat(template, prompts.system(), user)
        rows.append(list(model.tokenize(text.encode("utf-8"), add_bos=False, special=True)))

    def context(n_ctx: int, n_seq: int, unified: bool):
        p = llama_cpp.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = n_ctx, N_BATCH, N_BATCH, n_seq
        p.n_threads = p.n_threads_batch = args.threads
        p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as docqa's contexts of ≤ 16 k tokens
        p.kv_unified, p.no_perf = unified, True
        return _internals.LlamaContext(model=model, params=p, verbose=False)

    def logits_at(ctx, i: int):
        return np.array(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, i), shape=(n_vocab,)))

    def put(batch, j: int, tok: int, pos: int, seq: int, logits: bool) -> None:
        b = batch.batch
        b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = tok, pos, 1, logits
        b.seq_id[j][0] = seq

    def prefill(ctx, batch, ids: list[int], seq: int):
        for s in range(0, len(ids), N_BATCH):
            chunk = ids[s:s + N_BATCH]
            batch.reset()
            for i, tok in enumerate(chunk):
                put(batch, i, tok, s + i, seq, i == len(chunk) - 1)
            batch.batch.n_tokens = len(chunk)
            ctx.decode(batch)
        return logits_at(ctx, -1)

    def decode(group: list[list[int]], unified: bool) -> tuple[list[list[int]], float, int]:
        """Greedy answers to ``group``, every live sequence one token a step; (answers, decode seconds, steps)."""
        n = len(group)
        room = max(len(g) for g in group) + args.max_new_tokens + 1
        ctx = context(n * ((room + 255) // 256 * 256), n, unified)
        batch = _internals.LlamaBatch(n_tokens=N_BATCH, embd=0, n_seq_max=n, verbose=False)
        logits = [prefill(ctx, batch, ids, s) for s, ids in enumerate(group)]
        pos = [len(g) for g in group]
        outs: list[list[int]] = [[] for _ in group]
        live, seconds, steps = set(range(n)), 0.0, 0
        while live:
            feed = []
            for s in sorted(live):
                nxt = int(logits[s].argmax())
                if llama_cpp.llama_vocab_is_eog(vocab, nxt):
                    live.discard(s)
                    continue
                outs[s].append(nxt)
                if len(outs[s]) >= args.max_new_tokens:  # its last token needs no step
                    live.discard(s)
                else:
                    feed.append((s, nxt))
            if not feed:
                break
            t0 = time.perf_counter()
            batch.reset()
            for j, (s, tok) in enumerate(feed):
                put(batch, j, tok, pos[s], s, True)
                pos[s] += 1
            batch.batch.n_tokens = len(feed)
            ctx.decode(batch)
            seconds += time.perf_counter() - t0
            steps += 1
            for j, (s, _) in enumerate(feed):
                logits[s] = logits_at(ctx, j)
        return outs, seconds, steps

    alone = [decode([ids], True) for ids in rows]
    alone_answers = [a[0][0] for a in alone]
    base_tokens, base_s = sum(len(a) for a in alone_answers), sum(a[1] for a in alone)
    table = [{"batch": 1, "kv": "own context", "tokens": base_tokens, "decode_s": round(base_s, 2),
              "tokens_per_s": round(base_tokens / base_s, 1), "speedup": 1.0, "equal": len(rows)}]
    for size in [int(x) for x in args.batches.split(",")]:
        for unified in (False, True):
            tokens, seconds, equal = 0, 0.0, 0
            for g in range(0, len(rows), size):
                outs, s, _ = decode(rows[g:g + size], unified)
                tokens += sum(len(o) for o in outs)
                seconds += s
                equal += sum(o == alone_answers[g + i] for i, o in enumerate(outs))
            rate = tokens / seconds
            table.append({"batch": size, "kv": "one stream" if unified else "a stream each", "tokens": tokens,
                          "decode_s": round(seconds, 2), "tokens_per_s": round(rate, 1),
                          "speedup": round(rate / table[0]["tokens_per_s"], 2), "equal": equal})
    print(f"{len(rows)} rag prompts ({min(map(len, rows))}-{max(map(len, rows))} tokens), {args.model}, "
          f"{args.threads} threads, ≤ {args.max_new_tokens} new tokens, greedy")
    print(f"{'batch':>5}  {'KV':<14} {'tokens':>6} {'decode s':>8} {'tok/s':>6} {'speed-up':>8} {'equal to alone':>14}")
    for t in table:
        print(f"{t['batch']:>5}  {t['kv']:<14} {t['tokens']:>6} {t['decode_s']:>8} {t['tokens_per_s']:>6} "
              f"{t['speedup']:>8} {t['equal']:>9}/{len(rows)}")
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": cpu_name(), "cores": os.cpu_count(),
              "threads": args.threads, "model": args.model, "records": str(args.records), "prompts": len(rows),
              "max_new_tokens": args.max_new_tokens, "llama_cpp": llama_cpp.__version__, "rows": table}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
