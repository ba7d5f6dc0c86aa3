"""The robustness study's figure: per preset, blend ÷ dfs and blend ÷ the strongest baseline for
every estimation setting, the median over seeds with min–max bars, and a line at 1.0."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blendsim.experiments.common import FigureConfig
from blendsim.experiments.plotting import figure_legend, new_figure, save_png

SERIES = {
    "blend_vs_dfs": ("blend ÷ DFS", "#1f77b4", "o"),
    "blend_vs_best": ("blend ÷ the row's strongest baseline", "#d62728", "s"),
}


def _tick(label: str) -> str:
    """``1% σ0.5, video sampled`` -> ``1% σ0.5`` (the video group is marked on the axis)."""
    return label.split(", video ")[0]


def _group_bounds(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """(video group, first, last index) of consecutive labels sharing a video setting."""
    groups: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        name = label.split(", ")[-1] if ", video " in label else ""
        if groups and groups[-1][0] == name:
            groups[-1] = (name, groups[-1][1], i)
        else:
            groups.append((name, i, i))
    return groups


def _panel(ax: Any, rows: Sequence[dict[str, Any]], trace: str, labels: Sequence[str]) -> None:
    blend = [r for r in rows if r["trace"] == trace and r["policy"] == "blend"]
    for k, (key, (name, colour, mark)) in enumerate(SERIES.items()):
        xs, med, lo, hi = [], [], [], []
        for i, label in enumerate(labels):
            vals = sorted(float(r[key]) for r in blend if r["setting"] == label)
            if not vals:
                continue
            m = statistics.median(vals)
            xs.append(i + (k - 0.5) * 0.3)
            med.append(m)
            lo.append(m - vals[0])
            hi.append(vals[-1] - m)
        ax.errorbar(xs, med, yerr=[lo, hi], fmt=mark, color=colour, ms=5, capsize=3, lw=1.2, label=name)
    ax.axhline(1.0, color="black", lw=0.9)
    for name, first, last in _group_bounds(labels):
        if first > 0:
            ax.axvline(first - 0.5, color="grey", lw=0.7, ls=":")
        if name:
            ax.text(
                (first + last) / 2,
                1.0,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(
        range(len(labels)), [_tick(label) for label in labels], rotation=60, ha="right", fontsize=7.5
    )
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel("throughput ratio")
    ax.set_title(trace.replace("trace", "Trace#"), fontsize=9.5, pad=14)
    ax.grid(axis="y", alpha=0.3)


def plot(
    rows: Sequence[dict[str, Any]],
    traces: Sequence[str],
    labels: Sequence[str],
    cfg: FigureConfig,
    path: Path,
) -> Path:
    ncols = min(2, len(traces))
    fig, axes = new_figure(math.ceil(len(traces) / ncols), ncols, width=6.2, height=3.9, sharey=True)
    for ax, trace in zip(axes.flat, traces, strict=False):
        _panel(ax, rows, trace, labels)
    for ax in list(axes.flat)[len(traces) :]:
        ax.set_visible(False)
    figure_legend(fig, axes[0, 0], ncol=2)
    seeds = sorted({int(r["seed"]) for r in rows})
    over = f"median and min–max over {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    fig.suptitle(
        f"Beyond the paper: blend's gain against the length estimator, {cfg.model} on {cfg.gpu},\n"
        f"{rows[0]['requests']:,} requests per preset, overlapping engine; {over} (trace and planning)",
        fontsize=9,
    )
    return save_png(fig, path)
