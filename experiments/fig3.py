"""Figure 3: per-step compute/memory time ratio over the run, DFS order against blend.

The trace is BurstGPT (compute-heavy) followed by OpenVid (memory-heavy). In DFS order the engine runs
the BurstGPT subtree first (compute-bound steps, ratio >> 1) and then the videos (memory-bound, ratio
<< 1); blend mixes both so the ratio stays near the workload's density. Paper (§3.3 / Figure 3): the
DFS ratio swings by 10x or more across the BurstGPT -> OpenVid boundary; blend stays balanced.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.experiments.common import FigureConfig, Run, TraceRecipe, binned, run_all
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import color, label, new_figure, save_png
from blendsim.experiments.results import write_csv

POLICIES = ("dfs", "blend")
MIX = ("burstgpt", "openvid")
DENSITY = 1.0  # balanced on average, so any imbalance is the order's doing
SHARING = 0.02  # what BurstGPT alone shares (blendserve.md §6.1): no MMLU in this trace
BINS = 300


def recipe(cfg: FigureConfig) -> TraceRecipe:
    return TraceRecipe(
        mix=MIX,
        density=DENSITY,
        sharing=SHARING,
        requests=cfg.preset_requests or 40_000,
        model=cfg.model,
        gpu=cfg.gpu,
        seed=cfg.seed,
    )


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    runs = [Run(recipe(cfg), p, "overlap", cfg.gpu, seed=cfg.seed, keep_steps=True) for p in POLICIES]
    results = run_all(runs, cfg, None, "fig3")
    fig, axes = new_figure(1, 1, width=9.0, height=4.2)
    ax = axes[0, 0]
    rows: list[dict[str, Any]] = []
    lines = []
    for res in results:
        b = binned(res["series"], ("compute_s", "memory_s"), BINS, by="time")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = b["compute_s"] / b["memory_s"]
        frac = (b["start_s"] + b["end_s"]) / 2 / res["makespan_s"]
        ax.plot(
            100 * frac,
            ratio,
            color=color(res["policy"]),
            lw=1.3,
            label=f"{label(res['policy'])}: {res['throughput_tok_s']:,.0f} tok/s",
        )
        finite = ratio[np.isfinite(ratio) & (ratio > 0)]
        p10, p90 = np.percentile(finite, [10, 90]) if finite.size else (float("nan"), float("nan"))
        lines.append(
            f"fig3 [{res['policy']}]: compute/memory ratio p10 {p10:.2f}, p90 {p90:.2f} "
            f"(spread {p90 / p10:.1f}x; paper: DFS swings >= 10x, blend stays near balanced)"
        )
        for i in range(len(ratio)):
            rows.append(
                {
                    "policy": res["policy"],
                    "start_s": b["start_s"][i],
                    "end_s": b["end_s"][i],
                    "first_step": int(b["first_step"][i]),
                    "last_step": int(b["last_step"][i]),
                    "compute_s": b["compute_s"][i],
                    "memory_s": b["memory_s"][i],
                    "compute_over_memory": ratio[i],
                }
            )
    ax.axhline(1.0, color="black", lw=0.8, ls=":", label="balanced (compute = memory)")
    ax.set_yscale("log")
    ax.set_xlabel("progress through the run (% of that policy's makespan)")
    ax.set_ylabel("compute time / memory time per step")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(
        f"Figure 3: BurstGPT then OpenVid ({results[0]['requests']:,} requests, density {DENSITY}), "
        f"{cfg.model} on {cfg.gpu}, overlapping engine",
        fontsize=9,
    )
    paths = [write_csv(rows, out / "fig3.csv"), save_png(fig, out / "fig3.png")]
    return FigureOutput("fig3", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig3", run, argv)


if __name__ == "__main__":
    sys.exit(main())
