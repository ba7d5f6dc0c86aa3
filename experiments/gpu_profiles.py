"""Beyond the paper: the same presets on A100, H100 and H200 (built-in datasheet profiles).

The traces are the A100 presets, unchanged (a workload does not change with the GPU it runs on), so
their density differs per GPU: compute density scales with bandwidth / FLOP/s, which is about half
of the A100's on an H100 (3.35 TB/s / 989 TFLOP/s vs 2.04 / 312), and the H200 has more bandwidth and
KV memory. The paper measured only A100s (blendserve.md §8).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendsim.experiments.cells import trace_summary
from blendsim.experiments.common import (
    FigureConfig,
    add_speedups,
    build_trace,
    mean,
    preset_recipe,
    preset_runs,
    run_all,
    tagged,
)
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import new_figure, save_png, thousands
from blendsim.experiments.results import write_csv
from blendsim.profiler.gpus import get_gpu
from blendsim.profiler.models import get_model

GPUS = ("a100-80g", "h100-sxm", "h200")
POLICIES = ("dfs", "balance", "blend")
GPU_COLORS = {"a100-80g": "#2ca02c", "h100-sxm": "#1f77b4", "h200": "#9467bd"}
COLUMNS = (
    "trace",
    "gpu",
    "density_on_gpu",
    "policy",
    "throughput_tok_s",
    "optimal_throughput_tok_s",
    "fraction_of_optimal",
    "sharing",
    "blend_speedup",
)


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    presets = cfg.study_presets
    runs = [r for g in GPUS for r in preset_runs(cfg, POLICIES, ("overlap",), presets, gpu=g)]
    rows = add_speedups(tagged(runs, run_all(runs, cfg, cache, "gpu_profiles")))
    model = get_model(cfg.model)
    density = {
        (t, g): trace_summary(build_trace(preset_recipe(cfg, t)), model, get_gpu(g))["density"]
        for t in presets
        for g in GPUS
    }
    for r in rows:
        r["density_on_gpu"] = density[(r["trace"], r["gpu"])]
    fig, axes = new_figure(1, 3, width=4.6, height=4.2)
    x = np.arange(len(presets))
    w = 0.8 / len(GPUS)
    panels = (
        ("throughput_tok_s", "blend", "Blend throughput (tokens/s)"),
        ("blend_speedup", "dfs", "speedup of Blend over DFS"),
        ("fraction_of_optimal", "blend", "Blend's fraction of the practical optimum"),
    )
    for ax, (key, policy, ylabel) in zip(axes[0], panels, strict=True):
        for k, g in enumerate(GPUS):
            ys = [
                next(r[key] for r in rows if r["trace"] == t and r["gpu"] == g and r["policy"] == policy)
                for t in presets
            ]
            bars = ax.bar(x - 0.4 + w * (k + 0.5), ys, w, label=g, color=GPU_COLORS[g])
            if key != "throughput_tok_s":
                ax.bar_label(bars, fmt="%.2f", fontsize=6.5)
        ax.set_xticks(x, [t.replace("trace", "Trace#") for t in presets])
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        if key == "throughput_tok_s":
            thousands(ax)
        if key == "blend_speedup":
            ax.axhline(1.0, color="black", lw=0.8)
            ax.set_ylim(min(0.9, ax.get_ylim()[0]), ax.get_ylim()[1] * 1.05)
    fig.suptitle(
        f"Beyond the paper: the {cfg.gpu} presets on other GPUs (datasheet profiles), {cfg.model}, "
        f"{rows[0]['requests']:,} requests per preset, overlapping engine",
        fontsize=9.5,
    )
    paths = [write_csv(rows, out / "gpu_profiles.csv", COLUMNS), save_png(fig, out / "gpu_profiles.png")]
    lines = []
    for g in GPUS:
        sp = [r["blend_speedup"] for r in rows if r["gpu"] == g and r["policy"] == "dfs"]
        fr = [r["fraction_of_optimal"] for r in rows if r["gpu"] == g and r["policy"] == "blend"]
        rho = ", ".join(f"{density[(t, g)]:.2f}" for t in presets)
        lines.append(
            f"gpu_profiles [{g}]: preset densities {rho}; blend over dfs mean {mean(sp):.3f}x "
            f"(range {min(sp):.3f}-{max(sp):.3f}x), "
            f"blend at {100 * mean(fr):.1f}% of the optimum (paper: A100 only)"
        )
    return FigureOutput("gpu_profiles", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("gpu_profiles", run, argv)


if __name__ == "__main__":
    sys.exit(main())
