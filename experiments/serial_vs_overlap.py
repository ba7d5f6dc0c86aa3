"""Beyond the paper: how much of blend's gain survives on a serial (vLLM-like) engine?

The paper measures blend only on NanoFlow's overlapping engine (GEMM and decode attention run side
by side); on an engine that runs operators one after another a step costs compute + memory, so
balancing the two matters much less. Same presets, same orders, both compositions: blend's speedup
over DFS and over the best baseline on each engine, and the share of the overlap gain that remains.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendsim.experiments.common import (
    ALL_POLICIES,
    BASELINES,
    PRESETS,
    FigureConfig,
    add_speedups,
    mean,
    preset_runs,
    run_all,
    tagged,
)
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import ENGINE_LABELS, new_figure, save_png
from blendsim.experiments.results import write_csv

ENGINES = ("overlap", "serial")
COLUMNS = ("trace", "engine", "over", "blend_speedup", "blend_throughput_tok_s", "baseline_throughput_tok_s")


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    runs = preset_runs(cfg, ALL_POLICIES, ENGINES)  # the same runs as fig7: cached when fig7 ran first
    rows = add_speedups(tagged(runs, run_all(runs, cfg, cache, "serial_vs_overlap")))
    table = []
    for t in PRESETS:
        for e in ENGINES:
            mine = {r["policy"]: r for r in rows if r["trace"] == t and r["engine"] == e}
            best = max(BASELINES, key=lambda p: mine[p]["throughput_tok_s"])
            for over, label in (("dfs", "dfs"), (best, f"best baseline ({best})")):
                table.append(
                    {
                        "trace": t,
                        "engine": e,
                        "over": label,
                        "blend_speedup": mine[over]["blend_speedup"],
                        "blend_throughput_tok_s": mine["blend"]["throughput_tok_s"],
                        "baseline_throughput_tok_s": mine[over]["throughput_tok_s"],
                    }
                )
    fig, axes = new_figure(1, 2, width=5.6, height=4.2)
    x = np.arange(len(PRESETS))
    for ax, over in zip(axes[0], ("dfs", "best"), strict=True):
        for k, e in enumerate(ENGINES):
            ys = [
                next(
                    r["blend_speedup"]
                    for r in table
                    if r["trace"] == t and r["engine"] == e and r["over"].startswith(over)
                )
                for t in PRESETS
            ]
            bars = ax.bar(
                x - 0.2 + 0.4 * k, ys, 0.38, label=ENGINE_LABELS[e], color=("#d62728", "#9467bd")[k]
            )
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(x, [t.replace("trace", "Trace#") for t in PRESETS])
        ax.set_ylabel("speedup of Blend (x baseline throughput)")
        ax.set_title(
            "Blend over DFS" if over == "dfs" else "Blend over the best baseline of each trace", fontsize=9
        )
        low = min(r["blend_speedup"] for r in table)
        ax.set_ylim(min(0.9, low - 0.05), ax.get_ylim()[1] * 1.05)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7.5)
    fig.suptitle(
        f"Beyond the paper: serial vs overlapping engine, {cfg.model} on {cfg.gpu}, "
        f"{rows[0]['requests']:,} requests per preset",
        fontsize=9.5,
    )
    paths = [
        write_csv(table, out / "serial_vs_overlap.csv", COLUMNS),
        save_png(fig, out / "serial_vs_overlap.png"),
    ]
    gain = {
        e: mean([r["blend_speedup"] for r in table if r["engine"] == e and r["over"] == "dfs"])
        for e in ENGINES
    }
    kept = (gain["serial"] - 1) / (gain["overlap"] - 1) if gain["overlap"] != 1 else float("nan")
    lines = [
        f"serial_vs_overlap: blend over dfs mean {gain['overlap']:.3f}x overlapping, {gain['serial']:.3f}x "
        f"serial: {100 * kept:.0f}% of the gain survives on a serial engine (paper: not measured)"
    ]
    return FigureOutput("serial_vs_overlap", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("serial_vs_overlap", run, argv)


if __name__ == "__main__":
    sys.exit(main())
