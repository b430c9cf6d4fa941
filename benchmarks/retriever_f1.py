"""Token F1 with the embedded reader for every retriever configuration of benchmarks/retrievers.py (issue #31,
point 3: passage metrics *and* downstream F1, paired against dense, on two kinds of sets).

    .venv/bin/python benchmarks/retriever_f1.py ../shared/data/leval/financial_qa.jsonl \
        ../shared/data/leval/scientific_qa.jsonl [--seed benchmarks/out/retr-fin,benchmarks/out/retr-sci] [--dry]

Each set runs through ``docqa.evaluate`` itself (L-Eval protocol: length hints, the set's shared instruction cut
from retrieval, the style eval picks, one index per document) with one rag variant per configuration. What makes
the grid affordable on 2 cores: the reader decodes greedily, so two configurations that hand it the same passages
in the same order get the same answer. The reader's ``generate`` is wrapped in a memo keyed by exactly what the
model is given (prompt text, answer budget, stop strings); an identical prompt is answered once. ``--seed`` adds the
answers of earlier eval runs of the same sets (their records name the chunks read): each is keyed by the prompt
*this* code builds from those chunks, and the first few are regenerated and compared word for word before any seed
is trusted (a changed prompt template or decoder makes them differ, and the seeds are dropped).

Latencies in the written records are therefore not measurements (a memo hit costs nothing); only F1 is reported.
``--dry`` answers nothing (an empty answer) and prints how many distinct prompts the grid needs. Writes
benchmarks/out/retr-f1-STEM/ (eval's files) and benchmarks/results/retriever_f1.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# benchmarks/retrievers.py's configurations, as eval variants; k = 8 for dense and the default.
VARIANTS = {
    "dense": "rag:retriever=dense",
    "bm25": "rag:retriever=bm25",
    "hybrid:rrf:0.5": "rag:retriever=hybrid:fusion=rrf:fusion_weight=0.5",
    "hybrid:rrf:0.7": "rag:retriever=hybrid:fusion=rrf:fusion_weight=0.7",
    "hybrid:rrf:0.3": "rag:retriever=hybrid:fusion=rrf:fusion_weight=0.3",
    "hybrid:weighted:0.5": "rag:retriever=hybrid:fusion=weighted:fusion_weight=0.5",
    "hybrid:weighted:0.7": "rag:retriever=hybrid:fusion=weighted:fusion_weight=0.7",
    "hybrid:weighted:0.3": "rag:retriever=hybrid:fusion=weighted:fusion_weight=0.3",
    "dense@8": "rag:retriever=dense:top_k=8",
    "hybrid:rrf:0.7@8": "rag:retriever=hybrid:fusion=rrf:fusion_weight=0.7:top_k=8",
}
VERIFY = 3  # seeds regenerated and compared before the rest are trusted


class Memo:
    """Wraps a generator class's ``generate``: plain prompts (no rope plan, no prefix) answered once each."""

    def __init__(self, cls, dry: bool) -> None:
        self.dry = dry
        self.store: dict[tuple, object] = {}
        self.seeded: dict[tuple, object] = {}
        self.verified: list[bool] = []
        self.hits = self.misses = 0
        self.generated_s = 0.0
        self.original = cls.generate
        memo = self

        def generate(gen, prompt, max_new_tokens=128, *, rope=None, prefix=None, progress=None, stop=(),
                     score=None, on_text=None, floor=None):
            if rope is not None or prefix is not None or on_text is not None or not isinstance(prompt, str):
                return memo.original(gen, prompt, max_new_tokens, rope=rope, prefix=prefix, progress=progress,
                                     stop=stop, score=score, on_text=on_text, floor=floor)
            key = (prompt, max_new_tokens, tuple(stop), score, gen.config.no_repeat_ngram, floor and floor.words)
            if key in memo.store:
                memo.hits += 1
                return memo.store[key]
            if key in memo.seeded and memo.trusted:
                memo.hits += 1
                memo.store[key] = memo.seeded[key]
                return memo.store[key]
            memo.misses += 1
            if memo.dry:
                out = _generation("", 0, 0, "eos")
            else:
                t0 = time.perf_counter()
                out = memo.original(gen, prompt, max_new_tokens, stop=stop, score=score, floor=floor)
                memo.generated_s += time.perf_counter() - t0
                if key in memo.seeded:  # one of the first seeds met: regenerated, compared word for word
                    same = memo.seeded[key].text.strip() == out.text.strip()
                    memo.verified.append(same)
                    print(f"  seed check {len(memo.verified)}: {'same answer' if same else 'DIFFERENT answer'}",
                          flush=True)
                    if not same:
                        print(f"    seed: {memo.seeded[key].text[:120]!r}\n    now:  {out.text[:120]!r}",
                              flush=True)
            memo.store[key] = out
            return out

        cls.generate = generate

    @property
    def trusted(self) -> bool:
        """Seeds are used once the first VERIFY of them met were regenerated to the same words."""
        return len(self.verified) >= VERIFY and all(self.verified)


def _generation(text: str, prompt_tokens: int, completion_tokens: int, finish: str):
    from docqa.generators.base import Generation

    return Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      prefill_s=math.nan, decode_s=math.nan, ttft_s=math.nan, finish_reason=finish)


def seed(memo: Memo, folder: Path, root: Path, model: str, max_new_tokens: int) -> int:
    """Key each earlier rag record's answer by the prompt this code builds from the chunks it read."""
    import docqa
    from docqa import prompts
    from docqa.eval import runner

    path = folder / "results.jsonl"
    if not path.exists():
        return 0
    # The ban the seed run decoded with, from its settings (runs before the per-model default recorded 4 or nothing
    # and decoded with 4): seeds are keyed by it, so they only stand in for answers decoded the same way.
    summary = folder / "summary.json"
    settings = json.loads(summary.read_text())["meta"].get("settings", {}) if summary.exists() else {}
    banned = settings.get("generator", {}).get("no_repeat_ngram")
    banned = 4 if banned is None else banned
    records = [json.loads(line) for line in path.open()]
    by_doc: dict[str, dict[int, tuple[str, str]]] = {}
    n = 0
    for r in records:
        if not r["strategy"].startswith("rag") or r.get("error") or not r.get("retrieved"):
            continue
        doc = r["document"]
        if doc not in by_doc:
            idx = docqa.open_index(f"leval-{doc}", root=root, model=model)
            by_doc[doc] = {c.id: (c.file, c.text) for c in idx.corpus.store.chunks()}
            gen = idx.corpus.generator()
            idx.corpus.store.close()
        chunks = by_doc[doc]
        if any(i not in chunks for i in r["retrieved"]):
            continue  # the index changed since: its chunks are not these
        q = SimpleNamespace(answers=r["references"], metric=r["metric"])
        hint = runner.length_hint(q)
        budget = max(max_new_tokens, 2 * hint) if hint else max_new_tokens
        style = r["style"]
        prompt = gen.chat(prompts.system(style),
                          prompts.rag_user(r["question"].strip(), [chunks[i] for i in r["retrieved"]], hint))
        key = (prompt, budget, tuple(prompts.stop(style)), None, banned, None)  # records made before the length floor
        if key not in memo.seeded:
            memo.seeded[key] = _generation(r["answer"], r["prompt_tokens"], r["completion_tokens"],
                                           r.get("finish_reason") or "eos")
            n += 1
    return n


def table(records: list[dict], labels: dict[str, str], baseline: str = "dense") -> list[dict]:
    from docqa.eval.paired import paired

    by = {}
    for r in records:
        by.setdefault(r["strategy"], {})[r["id"]] = 100 * (r["metrics"].get("f1") or 0.0)
    base = by[labels[baseline]]
    rows = []
    for name, label in labels.items():
        got = by.get(label, {})
        ids = [i for i in base if i in got]
        row = {"config": name, "variant": label, "questions": len(ids),
               "f1": sum(got[i] for i in ids) / max(len(ids), 1)}
        if name != baseline and ids:
            p = paired([base[i] for i in ids], [got[i] for i in ids])
            row.update(diff=p.diff, ci_low=p.ci_low, ci_high=p.ci_high)
        b8 = by.get(labels.get("dense@8", ""), {})
        both = [i for i in ids if i in b8]
        if name == "hybrid:rrf:0.7@8" and both:
            p = paired([b8[i] for i in both], [got[i] for i in both])
            row.update(diff_vs_dense8=p.diff, ci_low_vs_dense8=p.ci_low, ci_high_vs_dense8=p.ci_high)
        rows.append(row)
    return rows


def print_rows(rows: list[dict], baseline: str = "dense") -> None:
    print(f"\n| configuration | questions | token F1 | − {baseline} (95 % CI) |\n|---|---:|---:|---|")
    for row in rows:
        d = f"{row['diff']:+.1f} [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]" if "diff" in row else ""
        if "diff_vs_dense8" in row:
            d += (f"; − dense@8: {row['diff_vs_dense8']:+.1f} [{row['ci_low_vs_dense8']:+.1f}, "
                  f"{row['ci_high_vs_dense8']:+.1f}]")
        print(f"| {row['config']} | {row['questions']} | {row['f1']:.1f} | {d} |")


def main() -> None:
    import docqa
    from docqa.generators.llamacpp import LlamaCppGenerator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--configs", default=",".join(VARIANTS),
                    help="names above, or any eval variant (rag:chunk_order=document), comma-separated")
    ap.add_argument("--baseline", default="dense", help="the configuration every other one is paired against")
    ap.add_argument("--no-repeat-ngram", type=int, default=None,
                    help="the reader's n-gram ban (default: docqa's); part of the memo's key")
    ap.add_argument("--seed", default="", help="comma-separated earlier eval folders of the same sets")
    ap.add_argument("--limit", type=int, default=None, help="first N scored questions of each set")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry", action="store_true", help="count distinct prompts; answer nothing")
    ap.add_argument("--tag", default="", help="suffix of the output folders (benchmarks/out/retr-f1-STEM-TAG)")
    ap.add_argument("--report", action="store_true",
                    help="answer nothing: print the tables from the records already in the output folders")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "retriever_f1.json")
    args = ap.parse_args()
    labels = {c: VARIANTS.get(c, c) for c in args.configs.split(",")}
    if args.baseline not in labels:
        sys.exit(f"the grid is paired against {args.baseline}: keep it in --configs")
    if args.report:
        for path in args.files:
            out = ROOT / "benchmarks" / "out" / "-".join(filter(None, ["retr-f1", path.stem, args.tag]))
            records = [json.loads(line) for line in (out / "results.jsonl").open()]
            print(f"\n### {path.stem} ({out.name}): {len({r['id'] for r in records})} questions")
            print_rows(table(records, labels, args.baseline), args.baseline)
        return
    memo = Memo(LlamaCppGenerator, args.dry)
    from docqa.generators import GeneratorConfig

    generator = GeneratorConfig(model=args.model, threads=args.threads)
    if args.no_repeat_ngram is not None:
        generator = dataclasses.replace(generator, no_repeat_ngram=args.no_repeat_ngram)
    results: dict = {"model": args.model, "date": time.strftime("%Y-%m-%d"), "configs": labels,
                     "baseline": args.baseline, "no_repeat_ngram": generator.no_repeat_ngram, "sets": {}}
    for path in args.files:
        stem = path.stem
        before = (memo.hits, memo.misses, memo.generated_s)
        t0 = time.perf_counter()
        for folder in filter(None, args.seed.split(",")):
            run = json.loads((Path(folder) / "run.json").read_text())
            if Path(run["questions"]).name == path.name and not args.dry:
                print(f"  {seed(memo, Path(folder), args.root, args.model, args.max_new_tokens)} answers of "
                      f"{folder} seeded", flush=True)
        out = ROOT / "benchmarks" / "out" / "-".join(filter(None, ["retr-f1", stem, args.tag, "dry" * args.dry]))
        records, _ = docqa.evaluate(leval=path, strategies=list(labels.values()), out=out, root=args.root,
                                    generator=dataclasses.replace(generator), limit=args.limit,
                                    max_new_tokens=args.max_new_tokens, grounding="overlap",
                                    notice=lambda s: print("  " + s, flush=True))
        rows = table(records, labels, args.baseline)
        results["sets"][stem] = {
            "questions": len({r["id"] for r in records}), "rows": rows,
            "distinct_prompts": memo.misses - before[1], "memo_hits": memo.hits - before[0],
            "generation_s": memo.generated_s - before[2], "wall_s": time.perf_counter() - t0}
        print(f"\n### {stem}: {results['sets'][stem]['questions']} questions; {memo.misses - before[1]} distinct "
              f"prompts answered, {memo.hits - before[0]} answers reused")
        print_rows(rows, args.baseline)
    results["seed_checks"] = memo.verified
    if not args.dry:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
