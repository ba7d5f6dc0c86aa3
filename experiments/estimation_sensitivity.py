"""Beyond the paper: sensitivity to output-length estimation, which the paper never measured.

Two sweeps on the high-sharing presets, blend and DFS each time (both plan and admit by the estimated
lengths): (a) the sampled estimator's sampling rate, 0.1 % to 100 % (the paper's default is 1 % and
it states only that 1 % is about as good as 100 %); (b) multiplicative error exp(σ·z), z ~ N(0, 1),
injected into exact (oracle) lengths, σ from 0 to 1 (0-100 %). The oracle's speedup is the reference.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blendsim.experiments.common import FigureConfig, Run, add_speedups, preset_recipe, run_all, tagged
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import new_figure, save_png
from blendsim.experiments.results import write_csv

POLICIES = ("dfs", "blend")
COLUMNS = (
    "trace",
    "estimator",
    "sample_rate",
    "length_noise",
    "policy",
    "throughput_tok_s",
    "fraction_of_optimal",
    "blend_speedup",
)
COLORS = {"trace1": "#d62728", "trace2": "#1f77b4", "trace3": "#ff7f0e", "trace4": "#2ca02c"}


def settings(cfg: FigureConfig) -> list[tuple[tuple[str, Any], ...]]:
    sampled: list[tuple[tuple[str, Any], ...]] = [
        (("estimator", "sampled"), ("sample_rate", r), ("length_noise", 0.0)) for r in cfg.sample_rates
    ]
    noisy: list[tuple[tuple[str, Any], ...]] = [
        (("estimator", "oracle"), ("sample_rate", 1.0), ("length_noise", s)) for s in cfg.noise_levels
    ]
    return sampled + noisy


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    runs = [
        Run(preset_recipe(cfg, t), p, "overlap", cfg.gpu, seed=cfg.seed, options=opts)
        for t in cfg.estimation_presets
        for opts in settings(cfg)
        for p in POLICIES
    ]
    rows = add_speedups(
        tagged(runs, run_all(runs, cfg, cache, "estimation")),
        extra=("estimator", "sample_rate", "length_noise"),
    )
    fig, axes = new_figure(1, 2, width=5.8, height=4.2)
    lines = []
    for t in cfg.estimation_presets:
        mine = [r for r in rows if r["trace"] == t and r["policy"] == "dfs"]
        oracle = next(
            r["blend_speedup"] for r in mine if r["estimator"] == "oracle" and r["length_noise"] == 0
        )
        samp = sorted((r["sample_rate"], r["blend_speedup"]) for r in mine if r["estimator"] == "sampled")
        noise = sorted((r["length_noise"], r["blend_speedup"]) for r in mine if r["estimator"] == "oracle")
        c = COLORS.get(t, "black")
        name = t.replace("trace", "Trace#")
        axes[0, 0].plot(
            [100 * x for x, _ in samp], [y for _, y in samp], "o-", color=c, label=f"{name}, sampled"
        )
        axes[0, 0].axhline(oracle, color=c, ls=":", lw=1, label=f"{name}, exact lengths")
        axes[0, 1].plot([100 * x for x, _ in noise], [y for _, y in noise], "s-", color=c, label=name)
        at1 = dict(samp).get(0.01)
        at100 = dict(samp).get(1.0)
        lines.append(
            f"estimation [{t}]: blend over dfs {at1:.3f}x at 1% sampling, {at100:.3f}x at 100% "
            f"(paper: 1% ~ 100%), {oracle:.3f}x with exact lengths, {noise[-1][1]:.3f}x with "
            f"{100 * noise[-1][0]:.0f}% injected error"
            if at1 and at100
            else f"estimation [{t}]: oracle {oracle:.3f}x, "
            f"{noise[-1][1]:.3f}x at {100 * noise[-1][0]:.0f}% error"
        )
    ax = axes[0, 0]
    ax.set_xscale("log")
    ax.set_xlabel("sampling rate (% of requests run to learn output lengths)")
    ax.set_ylabel("speedup of Blend over DFS")
    ax.set_title("(a) sampled estimator, by sampling rate", fontsize=9)
    ax = axes[0, 1]
    ax.set_xlabel("injected error σ in exp(σ·z) on exact lengths (%)")
    ax.set_ylabel("speedup of Blend over DFS")
    ax.set_title("(b) exact lengths with multiplicative noise", fontsize=9)
    for ax in axes[0]:
        ax.axhline(1.0, color="black", lw=0.8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Beyond the paper: output-length estimation, {cfg.model} on {cfg.gpu}, "
        f"{rows[0]['requests']:,} requests per preset, overlapping engine",
        fontsize=9.5,
    )
    paths = [
        write_csv(rows, out / "estimation_sensitivity.csv", COLUMNS),
        save_png(fig, out / "estimation_sensitivity.png"),
    ]
    return FigureOutput("estimation_sensitivity", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("estimation_sensitivity", run, argv)


if __name__ == "__main__":
    sys.exit(main())
