"""The pictures of ``docqa bench``: perplexity against context length, and needle heatmaps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    _pyplot().close(fig)
    os.replace(tmp, path)
    return path


def ppl_vs_length(path: Path, rows: list[dict[str, Any]], trained: int, title: str) -> Path:
    """One line per method (perplexity, log scale, with the samples' min–max as error bars); the trained window
    as a dashed vertical line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["length"])
        xs = [r["length"] for r in rs]
        ys = [r["ppl"] for r in rs]
        err = [[y - r["ppl_min"] for y, r in zip(ys, rs)], [r["ppl_max"] - y for y, r in zip(ys, rs)]]
        ax.errorbar(xs, ys, yerr=err if any(r["samples"] > 1 for r in rs) else None, marker="o", capsize=3,
                    label=method)
    ax.axvline(trained, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"trained window {trained:,}", (trained, 1), xycoords=("data", "axes fraction"),
                xytext=(4, -14), textcoords="offset points", fontsize=8, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    lengths = sorted({r["length"] for r in rows})
    ax.set_xticks(lengths, [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths])
    ax.set_xlabel("context length (tokens); every point scores the same final slice")
    ax.set_ylabel("perplexity of the fixed slice (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def needle_heatmap(path: Path, cells: list[dict[str, Any]], method: str, forms: list[str], lengths: list[int],
                   depths: list[float], trained: int, title: str) -> Path:
    """Depth × length, green found / red missed, one panel per prompt form; a dashed line where lengths pass the
    trained window."""
    import numpy as np
    from matplotlib.colors import ListedColormap

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(forms), figsize=(1.2 + 1.1 * len(lengths) * len(forms), 1.6 + 0.45 * len(depths)),
                             dpi=120, squeeze=False)
    cmap = ListedColormap(["#d9534f", "#5cb85c"])
    for ax, form in zip(axes[0], forms):
        grid = np.full((len(depths), len(lengths)), np.nan)
        for c in cells:
            if c["method"] == method and c["form"] == form and c["length"] in lengths and c["depth"] in depths:
                grid[depths.index(c["depth"]), lengths.index(c["length"])] = 1.0 if c["found"] else 0.0
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for i in range(len(depths)):
            for j in range(len(lengths)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, "✓" if grid[i, j] else "✗", ha="center", va="center", color="white", fontsize=9)
        ax.set_xticks(range(len(lengths)), [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("needle depth")
        ax.set_title(f"{form} form", fontsize=9)
        past = [j for j, n in enumerate(lengths) if n > trained]
        if past:
            ax.axvline(past[0] - 0.5, color="black", linestyle="--", linewidth=1.2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
