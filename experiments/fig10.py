"""Figure 10: per-step compute time and memory time over the run on Trace#2, for dfs, balance, blend.

One panel per policy, x = step, y = the step's predicted GEMM/prefill time ("compute") and decode
attention KV-read time ("memory"), each averaged over bins of consecutive steps. Paper (§7.4, Trace#2):
BlendServe's compute and memory time stay flat; NanoFlow-DFS under-uses bandwidth until about 90K
steps, then turns memory-heavy; Balance keeps memory time stable while its compute fluctuates.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.experiments.common import FigureConfig, Run, binned, preset_recipe, run_all
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import label, new_figure, save_png, thousands
from blendsim.experiments.results import write_csv

POLICIES = ("dfs", "balance", "blend")
PRESET = "trace2"
BINS = 400


def cv(x: np.ndarray) -> float:
    """Coefficient of variation of a binned series: how far from flat it is."""
    return float(np.std(x) / np.mean(x)) if np.mean(x) > 0 else float("nan")


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    recipe = preset_recipe(cfg, PRESET)
    runs = [Run(recipe, p, "overlap", cfg.gpu, seed=cfg.seed, keep_steps=True) for p in POLICIES]
    results = run_all(runs, cfg, None, "fig10")
    fig, axes = new_figure(len(POLICIES), 1, width=9.0, height=2.6, sharex=True, sharey=True)
    rows: list[dict[str, Any]] = []
    lines = []
    for ax, res in zip(axes[:, 0], results, strict=True):
        b = binned(res["series"], ("compute_s", "memory_s", "step_s"), BINS)
        x = (b["first_step"] + b["last_step"]) / 2
        ax.plot(x, 1e3 * b["compute_s"], color="#1f77b4", lw=1.1, label="compute (GEMM + prefill attention)")
        ax.plot(x, 1e3 * b["memory_s"], color="#d62728", lw=1.1, label="memory (decode attention KV reads)")
        comp_cv, mem_cv = cv(b["compute_s"]), cv(b["memory_s"])
        ax.set_title(
            f"{label(res['policy'])}: {res['steps']:,} steps, {res['makespan_s']:,.0f} s, "
            f"{res['throughput_tok_s']:,.0f} tok/s; variation (CV) of compute {comp_cv:.2f}, "
            f"memory {mem_cv:.2f}",
            fontsize=8.5,
        )
        ax.set_ylabel("time per step (ms)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        for i in range(len(x)):
            rows.append(
                {
                    "policy": res["policy"],
                    "first_step": int(b["first_step"][i]),
                    "last_step": int(b["last_step"][i]),
                    "compute_s": b["compute_s"][i],
                    "memory_s": b["memory_s"][i],
                    "step_s": b["step_s"][i],
                }
            )
        lines.append(
            f"fig10 [{res['policy']}]: per-step compute CV {comp_cv:.2f}, memory CV {mem_cv:.2f}, "
            f"{res['steps']:,} steps (paper: blend flat; dfs memory-light until ~90K of its steps, "
            "then memory-heavy)"
        )
    axes[0, 0].legend(fontsize=7.5, loc="upper right")
    axes[-1, 0].set_xlabel(f"step (mean over {BINS} bins of consecutive steps)")
    thousands(axes[-1, 0], "x")
    fig.suptitle(
        f"Figure 10: per-step resource time on Trace#2 ({results[0]['requests']:,} requests), "
        f"{cfg.model} on {cfg.gpu}, overlapping engine",
        fontsize=9.5,
    )
    paths = [write_csv(rows, out / "fig10.csv"), save_png(fig, out / "fig10.png")]
    return FigureOutput("fig10", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig10", run, argv)


if __name__ == "__main__":
    sys.exit(main())
