"""Figure 12: other models. Qwen-2.5-7B and Llama-2-7B on one A100; Qwen-2.5-72B and DeepSeek-67B on
eight A100s with tensor parallelism 8. The presets are re-synthesised for each model (densities depend
on the model), as the paper does.

One panel per model: throughput of dfs, balance and blend on each preset, with the practical optimum.
Paper (§7.8): blend is +15.2 % over NanoFlow-DFS on average, up to +24.4 %, at 89.9 % of the optimum.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from blendsim.experiments.common import FigureConfig, add_speedups, mean, preset_runs, run_all, tagged
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import (
    figure_legend,
    new_figure,
    preset_throughput_bars,
    save_png,
    thousands,
)
from blendsim.experiments.results import write_csv

MODELS = (("qwen-2.5-7b", 1), ("llama-2-7b", 1), ("qwen-2.5-72b", 8), ("deepseek-67b", 8))  # §7.1
POLICIES = ("dfs", "balance", "blend")
PAPER_MEAN, PAPER_MAX, PAPER_OPT = 1.152, 1.244, 0.899  # §7.8
COLUMNS = (
    "model",
    "tp",
    "trace",
    "policy",
    "requests",
    "throughput_tok_s",
    "optimal_throughput_tok_s",
    "fraction_of_optimal",
    "sharing",
    "blend_speedup",
)


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    presets = cfg.fig12_presets
    runs = [
        r
        for model, tp in MODELS
        for r in preset_runs(cfg, POLICIES, ("overlap",), presets, model=model, tp=tp)
    ]
    rows = add_speedups(tagged(runs, run_all(runs, cfg, cache, "fig12")))
    fig, axes = new_figure(2, 2, width=5.2, height=3.9)
    lines = []
    for ax, (model, tp) in zip(axes.flat, MODELS, strict=True):
        mine = [r for r in rows if r["model"] == model]
        preset_throughput_bars(
            ax, mine, presets, POLICIES, tick_prefix="T#", ylabel="throughput (tokens/s, all GPUs)"
        )
        sp = [r["blend_speedup"] for r in mine if r["policy"] == "dfs"]
        frac = [r["fraction_of_optimal"] for r in mine if r["policy"] == "blend"]
        hw = f"{tp}x {cfg.gpu}, TP={tp}" if tp > 1 else f"1x {cfg.gpu}"
        ax.set_title(
            f"{model} ({hw})\nBlend/DFS mean {mean(sp):.3f}x, {100 * mean(frac):.1f}% of opt.", fontsize=8.5
        )
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        thousands(ax)
        lines.append(
            f"fig12 [{model}]: blend over dfs mean {mean(sp):.3f}x, max {max(sp):.3f}x; "
            f"blend at {100 * mean(frac):.1f}% of the optimum"
        )
    figure_legend(fig, axes[0, 0])
    sp_all = [r["blend_speedup"] for r in rows if r["policy"] == "dfs"]
    frac_all = [r["fraction_of_optimal"] for r in rows if r["policy"] == "blend"]
    lines.append(
        f"fig12: over all models blend over dfs mean {mean(sp_all):.3f}x, max {max(sp_all):.3f}x "
        f"(paper mean {PAPER_MEAN:.3f}x, max {PAPER_MAX:.3f}x); blend at {100 * mean(frac_all):.1f}% "
        f"of the optimum (paper {100 * PAPER_OPT:.1f}%)"
    )
    fig.suptitle(
        f"Figure 12: other models, presets re-synthesised per model, {rows[0]['requests']:,} requests each,\n"
        "overlapping engine (bar labels: % of the practical optimum)",
        fontsize=9.5,
    )
    paths = [write_csv(rows, out / "fig12.csv", COLUMNS), save_png(fig, out / "fig12.png")]
    return FigureOutput("fig12", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig12", run, argv)


if __name__ == "__main__":
    sys.exit(main())
