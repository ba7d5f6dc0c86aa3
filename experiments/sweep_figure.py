"""The sweep's figure: lines against the varying axis, or heatmaps for a 2-D density x sharing grid.

1-D (one sharing ratio, or one density): left, throughput of every policy (solid = overlapping engine,
dashed = serial); right, blend's speedup over each baseline. 2-D: one heatmap of blend's speedup per
(engine, baseline), like the paper's Figure 11; infeasible cells grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.experiments.grid import SweepSpec
from blendsim.experiments.plotting import (
    ENGINE_STYLES,
    color,
    heatmap,
    label,
    marker,
    new_figure,
    save_png,
    thousands,
)


def _value(rows: Sequence[dict[str, Any]], d: float, s: float, engine: str, policy: str, key: str) -> float:
    for r in rows:
        if (r["target_density"], r["target_sharing"], r["engine"], r["policy"]) == (d, s, engine, policy):
            v = r.get(key)
            return float(v) if v is not None else float("nan")
    return float("nan")


def _subtitle(spec: SweepSpec) -> str:
    hw = spec.profile or spec.gpu
    tp = f" TP={spec.tp}" if spec.tp > 1 else ""
    dp = f", DP={spec.dp}" if spec.dp > 1 else ""
    return f"{'+'.join(spec.mix)}; {spec.model} on {hw}{tp}{dp}; {spec.requests:,} requests per trace"


def plot_lines(spec: SweepSpec, rows: Sequence[dict[str, Any]], path: Path) -> Path:
    by_density = len(spec.densities) > 1 or len(spec.sharings) == 1
    xs = spec.densities if by_density else spec.sharings
    fixed = spec.sharings[0] if by_density else spec.densities[0]
    xlabel = (
        "target compute density ρ (compute time / memory time)"
        if by_density
        else "target prefix-sharing ratio s"
    )

    def at(x: float) -> tuple[float, float]:
        return (x, fixed) if by_density else (fixed, x)

    with_speedup = "blend" in spec.policies and len(spec.policies) > 1
    fig, axes = new_figure(1, 2 if with_speedup else 1, width=6.2, height=4.3)
    ax_t, ax_s = axes[0, 0], axes[0, -1]
    dense = len(xs) >= 30
    for engine in spec.engines:
        for policy in spec.policies:
            ys = [_value(rows, *at(x), engine, policy, "throughput_tok_s") for x in xs]
            name = label(policy) + ("" if len(spec.engines) == 1 else f", {engine}")
            ax_t.plot(
                xs,
                ys,
                ENGINE_STYLES.get(engine, "-"),
                color=color(policy),
                marker=None if dense else marker(policy),
                ms=4,
                label=name,
                zorder=3 if policy == "fifo" else 2,
                lw=2.8 if policy == "dfs" else 1.3,
            )
            if policy != "blend" and with_speedup:
                sp = [_value(rows, *at(x), engine, policy, "blend_speedup") for x in xs]
                ax_s.plot(
                    xs,
                    sp,
                    ENGINE_STYLES.get(engine, "-"),
                    color=color(policy),
                    marker=None if dense else marker(policy),
                    ms=4,
                    zorder=3 if policy == "fifo" else 2,
                    lw=2.8 if policy == "dfs" else 1.3,
                    label=f"over {label(policy)}" + ("" if len(spec.engines) == 1 else f", {engine}"),
                )
    fixed_text = f"sharing s = {fixed:.2f}" if by_density else f"density ρ = {fixed:.2f}"
    ax_t.set_title(f"Throughput ({fixed_text})")
    ax_t.set_xlabel(xlabel)
    ax_t.set_ylabel("throughput (tokens/s, prompt + output)")
    thousands(ax_t)
    ax_t.grid(alpha=0.3)
    ax_t.legend(fontsize=7.5)
    if with_speedup:
        ax_s.axhline(1.0, color="black", lw=0.8)
        ax_s.set_title(f"Speedup of Blend over each baseline ({fixed_text})")
        ax_s.set_xlabel(xlabel)
        ax_s.set_ylabel("speedup (× baseline throughput)")
        ax_s.grid(alpha=0.3)
        ax_s.legend(fontsize=7.5)
    infeasible = [
        x for x in xs if np.isnan(_value(rows, *at(x), spec.engines[0], spec.policies[0], "throughput_tok_s"))
    ]
    note = f"; infeasible or missing at {', '.join(f'{x:.2f}' for x in infeasible)}" if infeasible else ""
    fig.suptitle(_subtitle(spec) + note, fontsize=9)
    return save_png(fig, path)


def plot_heatmaps(
    spec: SweepSpec,
    rows: Sequence[dict[str, Any]],
    path: Path,
    baselines: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    bases = list(baselines or [p for p in spec.policies if p != "blend"])
    engines = list(spec.engines)
    fig, axes = new_figure(
        len(engines),
        len(bases),
        width=max(6.5, 0.55 * len(spec.densities) + 1.8),
        height=max(3.2, 0.5 * len(spec.sharings) + 1.6),
    )
    for i, engine in enumerate(engines):
        for j, base in enumerate(bases):
            vals = np.array(
                [
                    [_value(rows, d, s, engine, base, "blend_speedup") for d in spec.densities]
                    for s in spec.sharings
                ]
            )
            ax = axes[i, j]
            heatmap(
                ax,
                vals,
                spec.densities,
                spec.sharings,
                xlabel="target compute density ρ",
                ylabel="target sharing ratio s",
                cbar_label=f"Blend / {base} throughput",
            )
            finite = vals[np.isfinite(vals)]
            stats = (
                f"mean {finite.mean():.3f}x, range {finite.min():.2f}-{finite.max():.2f}x"
                if finite.size
                else "no feasible cell"
            )
            ax.set_title(f"Blend over {label(base)}, {engine} engine\n{stats}", fontsize=9)
    fig.suptitle(title or _subtitle(spec), fontsize=10)
    return save_png(fig, path)


def plot_sweep(spec: SweepSpec, rows: Sequence[dict[str, Any]], path: Path) -> Path:
    if (
        len(spec.densities) > 1
        and len(spec.sharings) > 1
        and "blend" in spec.policies
        and len(spec.policies) > 1
    ):
        return plot_heatmaps(spec, rows, path)
    return plot_lines(spec, rows, path)
