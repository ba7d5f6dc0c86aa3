"""Figure 7: throughput of fifo, dfs, balance and blend on the four presets, on both engines.

Bars per preset and policy, one panel per engine (overlapping = NanoFlow-like, serial = vLLM-like); a
black tick marks the practical optimum (blendserve.md §2.6) and each bar is annotated with its
fraction of it. Paper (§7.2, Llama-3-8B on one A100, NanoFlow engine): BlendServe is +20.84 % over
NanoFlow-DFS on average (+19.34 % to +22.65 %) and reaches 86.55 % of the practical optimum.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blendsim.experiments.common import (
    ALL_POLICIES,
    PRESETS,
    FigureConfig,
    add_speedups,
    mean,
    preset_runs,
    run_all,
    tagged,
)
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import (
    ENGINE_LABELS,
    figure_legend,
    new_figure,
    preset_throughput_bars,
    save_png,
    thousands,
)
from blendsim.experiments.results import write_csv

ENGINES = ("overlap", "serial")
PAPER_SPEEDUP_OVER_DFS = 1.2084  # §7.2: mean +20.84 % over NanoFlow-DFS
PAPER_FRACTION_OF_OPTIMAL = 0.8655  # §7.2: mean 86.55 % of the practical optimum
COLUMNS = (
    "trace",
    "engine",
    "policy",
    "requests",
    "total_tokens",
    "throughput_tok_s",
    "makespan_s",
    "optimal_throughput_tok_s",
    "fraction_of_optimal",
    "sharing",
    "optimal_sharing",
    "blend_speedup",
)


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str, engines: Sequence[str] = ENGINES) -> Path:
    fig, axes = new_figure(1, len(engines), width=6.4, height=4.4)
    for ax, engine in zip(axes[0], engines, strict=True):
        mine = [r for r in rows if r["engine"] == engine]
        preset_throughput_bars(
            ax,
            mine,
            PRESETS,
            ALL_POLICIES,
            tick_prefix="Trace#",
            ylabel="throughput (tokens/s, prompt + output)",
        )
        sp = [r["blend_speedup"] for r in mine if r["policy"] == "dfs"]
        frac = [r["fraction_of_optimal"] for r in mine if r["policy"] == "blend"]
        ax.set_title(
            f"{ENGINE_LABELS[engine]}\nBlend over DFS: mean {mean(sp):.3f}x; "
            f"Blend at {100 * mean(frac):.1f}% of optimum",
            fontsize=9,
        )
        thousands(ax)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
    figure_legend(fig, axes[0, 0])
    fig.suptitle(title + " (bar labels: % of the practical optimum)", fontsize=9.5)
    return save_png(fig, path)


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    runs = preset_runs(cfg, ALL_POLICIES, ENGINES)
    rows = add_speedups(tagged(runs, run_all(runs, cfg, cache, "fig7")))
    n = rows[0]["requests"]
    title = f"Figure 7: four presets, {cfg.model} on {cfg.gpu}, {n:,} requests each"
    paths = [write_csv(rows, out / "fig7.csv", COLUMNS), plot(rows, out / "fig7.png", title)]
    lines = []
    for engine in ENGINES:
        sp = [r["blend_speedup"] for r in rows if r["engine"] == engine and r["policy"] == "dfs"]
        frac = [r["fraction_of_optimal"] for r in rows if r["engine"] == engine and r["policy"] == "blend"]
        lines.append(
            f"fig7 [{engine}]: blend over dfs mean {mean(sp):.3f}x (range {min(sp):.3f}-{max(sp):.3f}x; "
            f"paper {PAPER_SPEEDUP_OVER_DFS:.3f}x on NanoFlow); blend at {100 * mean(frac):.1f}% "
            f"of the optimum (paper {100 * PAPER_FRACTION_OF_OPTIMAL:.2f}%)"
        )
    return FigureOutput("fig7", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig7", run, argv)


if __name__ == "__main__":
    sys.exit(main())
