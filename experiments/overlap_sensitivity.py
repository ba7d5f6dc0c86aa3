"""Beyond the paper: how blend's gain depends on the overlapping engine's interference model.

Blend over DFS on the presets, at 40,000 requests and at the paper's 400,000 (the config's preset
size), under

* the ``shared`` interference model of the GPU built-ins (:mod:`blendsim.profiler.interference`),
  its one unmeasured parameter, the SM split (the share of the SMs attention takes while the GEMMs
  run), swept over ``SM_SPLITS`` (the built-ins assume 0.2);
* the ``constant`` model it replaced, ``max(C, M) + kappa min(C, M)`` on every step, kappa swept
  over ``KAPPAS`` (0.2 was the built-ins' assumed constant; 1 is the serial composition);
* the serial engine (vLLM-like), for reference.

So the reader sees how much of the gain is the interference assumption's: the constant model hides
a weight-bound step's KV reads behind its weight reads, the shared model does not.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from blendsim.experiments.common import FigureConfig, Run, add_speedups, preset_recipe, run_all, tagged
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import new_figure, save_png
from blendsim.experiments.results import write_csv

POLICIES = ("dfs", "blend")
SM_SPLITS = (0.0, 0.1, 0.2, 0.3, 0.5)
KAPPAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
QUICK = {"sm_splits": (0.0, 0.2, 0.5), "kappas": (0.0, 0.2, 0.5, 1.0)}
COLUMNS = (
    "trace",
    "requests",
    "interference",
    "parameter",
    "blend_speedup",
    "blend_throughput_tok_s",
    "dfs_throughput_tok_s",
)
COLORS = {"trace1": "#d62728", "trace2": "#1f77b4", "trace3": "#ff7f0e", "trace4": "#2ca02c"}


def models(cfg: FigureConfig) -> list[tuple[str, float, str, tuple[tuple[str, Any], ...]]]:
    """(interference, parameter, engine, profile overrides) of every composition studied."""
    full = cfg.scale == "full"
    splits = SM_SPLITS if full else QUICK["sm_splits"]
    kappas = KAPPAS if full else QUICK["kappas"]
    out: list[tuple[str, float, str, tuple[tuple[str, Any], ...]]] = [
        ("shared", s, "overlap", (("interference", "shared"), ("overlap_sm_split", s))) for s in splits
    ]
    out += [("constant", k, "overlap", (("interference", "constant"), ("kappa", k))) for k in kappas]
    out.append(("serial", 1.0, "serial", ()))
    return out


def sizes(cfg: FigureConfig) -> list[int]:
    """40,000 requests and the config's preset size (the paper's 400,000 at full scale)."""
    size = cfg.preset_requests or 400_000
    return sorted({min(40_000, size), size})


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    runs = [
        Run(
            replace(preset_recipe(cfg, t), requests=n),
            p,
            engine,
            cfg.gpu,
            seed=cfg.seed,
            profile_params=params,
        )
        for n in sizes(cfg)
        for t in cfg.study_presets
        for _kind, _value, engine, params in models(cfg)
        for p in POLICIES
    ]
    rows = add_speedups(
        tagged(runs, run_all(runs, cfg, cache, "overlap_sensitivity")),
        extra=("requests", "interference", "kappa", "overlap_sm_split"),
    )
    table = _table(rows, cfg)
    paths = [write_csv(table, out / "overlap_sensitivity.csv", COLUMNS), _plot(table, cfg, out)]
    return FigureOutput("overlap_sensitivity", paths, _headline(table, cfg))


def _table(rows: list[dict[str, Any]], cfg: FigureConfig) -> list[dict[str, Any]]:
    table = []
    for r in rows:
        if r["policy"] != "dfs":
            continue
        kind = r.get("interference") or "serial"
        value = {"shared": r.get("overlap_sm_split"), "constant": r.get("kappa")}.get(kind, 1.0)
        table.append(
            {
                "trace": r["trace"],
                "requests": r["requests"],
                "interference": kind,
                "parameter": value,
                "blend_speedup": r["blend_speedup"],
                "blend_throughput_tok_s": r["throughput_tok_s"] * r["blend_speedup"],
                "dfs_throughput_tok_s": r["throughput_tok_s"],
            }
        )
    return table


def _plot(table: list[dict[str, Any]], cfg: FigureConfig, out: Path) -> Path:
    fig, axes = new_figure(1, 2, width=5.6, height=4.2)
    styles = {n: ls for n, ls in zip(sizes(cfg), ("--", "-"), strict=False)}
    for ax, kind, xlabel in (
        (axes[0][0], "shared", "SM split (share of the SMs attention takes beside the GEMMs)"),
        (axes[0][1], "constant", "kappa (constant model: max(C, M) + kappa min(C, M))"),
    ):
        for t in cfg.study_presets:
            for n in sizes(cfg):
                mine = sorted(
                    (
                        r
                        for r in table
                        if r["trace"] == t and r["requests"] == n and r["interference"] == kind
                    ),
                    key=lambda r: r["parameter"],
                )
                ax.plot(
                    [r["parameter"] for r in mine],
                    [r["blend_speedup"] for r in mine],
                    styles[n],
                    marker="o",
                    ms=3,
                    color=COLORS.get(t, "black"),
                    label=f"{t}, {n:,} requests",
                )
                serial = next(
                    r["blend_speedup"]
                    for r in table
                    if r["trace"] == t and r["requests"] == n and r["interference"] == "serial"
                )
                ax.axhline(serial, color=COLORS.get(t, "black"), lw=0.6, ls=":")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("blend / dfs throughput")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5)
    axes[0][0].axvline(0.2, color="grey", lw=0.6)
    axes[0][0].set_title("shared model (GPU built-ins; 0.2 assumed)", fontsize=9)
    axes[0][1].set_title("constant model (0.2 was the old built-in)", fontsize=9)
    fig.suptitle(
        f"Beyond the paper: blend's gain against the interference model, {cfg.model} on {cfg.gpu}; "
        "dotted: the serial engine",
        fontsize=9,
    )
    return save_png(fig, out / "overlap_sensitivity.png")


def _headline(table: list[dict[str, Any]], cfg: FigureConfig) -> list[str]:
    lines = []
    for n in sizes(cfg):
        parts = []
        for kind in ("shared", "constant", "serial"):
            gains = [r["blend_speedup"] for r in table if r["requests"] == n and r["interference"] == kind]
            parts.append(f"{kind} {min(gains):.3f}-{max(gains):.3f}x")
        lines.append(f"overlap_sensitivity [{n:,} requests]: blend over dfs, " + ", ".join(parts))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("overlap_sensitivity", run, argv)


if __name__ == "__main__":
    sys.exit(main())
