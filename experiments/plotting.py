"""Shared matplotlib helpers: headless backend, one colour and label per policy, atomic PNG writes.

Every figure in blendsim goes through :func:`save_png`, so a failed plot leaves no half-written file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from blendsim.outputs import atomic_output  # noqa: E402

POLICY_LABELS = {
    "fifo": "FIFO (arrival order)",
    "dfs": "DFS (NanoFlow-DFS)",
    "balance": "Balance (random order)",
    "blend": "Blend (BlendServe)",
}
POLICY_COLORS = {"fifo": "#7f7f7f", "dfs": "#1f77b4", "balance": "#ff7f0e", "blend": "#d62728"}
POLICY_MARKERS = {"fifo": "x", "dfs": "o", "balance": "s", "blend": "^"}
ENGINE_LABELS = {"overlap": "overlapping engine (NanoFlow-like)", "serial": "serial engine (vLLM-like)"}
ENGINE_STYLES = {"overlap": "-", "serial": "--"}
DPI = 130


def label(policy: str) -> str:
    return POLICY_LABELS.get(policy, policy)


def color(policy: str) -> str:
    return POLICY_COLORS.get(policy, "#2ca02c")


def marker(policy: str) -> str:
    return POLICY_MARKERS.get(policy, "o")


def new_figure(
    nrows: int = 1, ncols: int = 1, width: float = 6.4, height: float = 4.0, **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """A figure and a 2-D array of axes (always 2-D, so callers index ``axes[r, c]``)."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained", **kwargs
    )
    return fig, axes


def figure_legend(fig: Figure, ax: Any, ncol: int = 5) -> None:
    """One legend for the whole figure, under the panels (from ``ax``'s labelled artists)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return path


def heatmap(
    ax: Any,
    values: np.ndarray,
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    cbar_label: str,
    fmt: str = "{:.2f}x",
    cmap: str = "RdYlGn",
    center: float | None = 1.0,
) -> None:
    """``values[i, j]`` at (x = xs[j], y = ys[i]); NaN cells grey and marked 'n/a' (infeasible)."""
    masked = np.ma.masked_invalid(values)
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if center is not None and finite.size:
        half = max(abs(vmax - center), abs(center - vmin), 1e-3)
        vmin, vmax = center - half, center + half
    cm = matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9")
    im = ax.imshow(masked, origin="lower", aspect="auto", cmap=cm, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(xs)), [f"{x:.2f}" for x in xs], rotation=45 if len(xs) > 8 else 0)
    ax.set_yticks(range(len(ys)), [f"{y:.2f}" for y in ys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    small = len(xs) > 10
    for i in range(len(ys)):
        for j in range(len(xs)):
            v = values[i, j]
            text = fmt.format(v) if np.isfinite(v) else "n/a"
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5 if small else 8, color="black")
    ax.figure.colorbar(im, ax=ax, label=cbar_label)


def bar_groups(
    ax: Any,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    annotations: Mapping[str, Sequence[str]] | None = None,
    labels: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> None:
    """Grouped bars: one group per ``groups`` entry, one bar per series (a policy by name, or any
    series named in ``labels`` and ``colors``)."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (name, ys) in enumerate(series.items()):
        pos = x - 0.4 + width * (k + 0.5)
        vals = np.asarray(ys, dtype=float)
        shown = (labels or {}).get(name) or label(name)
        ax.bar(pos, np.nan_to_num(vals), width, label=shown, color=(colors or {}).get(name) or color(name))
        for j, text in enumerate((annotations or {}).get(name, [])):
            if text and np.isfinite(vals[j]):
                ax.text(pos[j], vals[j], text, ha="center", va="bottom", fontsize=6.5, rotation=90)
    ax.set_xticks(x, list(groups))
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def thousands(ax: Any, axis: str = "y") -> None:
    """Tick labels like 12,000 instead of 1.2e4."""
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def preset_throughput_bars(
    ax: Any,
    rows: Sequence[Mapping[str, Any]],
    presets: Sequence[str],
    policies: Sequence[str],
    *,
    tick_prefix: str,
    ylabel: str,
) -> None:
    """Throughput bars per preset (one per policy), each labelled with its % of the practical
    optimum, and the optimum as a black line over each group. ``rows`` hold one engine and model."""

    def value(key: str, trace: str, policy: str) -> float:
        return float(next(r[key] for r in rows if r["trace"] == trace and r["policy"] == policy))

    series = {p: [value("throughput_tok_s", t, p) for t in presets] for p in policies}
    notes = {p: [f"{100 * value('fraction_of_optimal', t, p):.0f}%" for t in presets] for p in policies}
    bar_groups(
        ax, [t.replace("trace", tick_prefix) for t in presets], series, ylabel=ylabel, annotations=notes
    )
    for j, t in enumerate(presets):
        optimum = next(r["optimal_throughput_tok_s"] for r in rows if r["trace"] == t)
        ax.hlines(
            optimum, j - 0.42, j + 0.42, color="black", lw=1.5, label="practical optimum" if j == 0 else None
        )
