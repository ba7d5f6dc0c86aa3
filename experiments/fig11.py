"""Figure 11: speedup of blend over DFS on a density x sharing grid (BurstGPT + MMLU + OpenVid).

Runs the grid through the sweep machinery (parallel, resumable: its cells live in ``OUT/fig11_cells``)
and draws one heatmap; infeasible cells are grey. Paper (§7.5, 13 x 5 grid, density 0.80-1.40 by 0.05,
sharing 0.05-0.45 by 0.10): 1.14x to 1.34x, mean 1.2253x, maximum near density 1.30; flat across
sharing, smaller at low density.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blendsim.experiments.common import FigureConfig, mean
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.grid import SweepSpec, parse_values
from blendsim.experiments.results import COLUMNS, sweep_rows, write_csv
from blendsim.experiments.sweep import run_sweep
from blendsim.experiments.sweep_figure import plot_heatmaps

PAPER = {"fig11": (1.14, 1.34, 1.2253)}  # §7.5: min, max, mean speedup over NanoFlow-DFS


def run_grid(
    name: str, mix: Sequence[str], densities: str, sharings: str, out: Path, cfg: FigureConfig
) -> tuple[SweepSpec, list[dict[str, Any]], int]:
    """Blend and DFS on every cell of the grid; returns the spec, the result rows and infeasible count."""
    spec = SweepSpec(
        mix=tuple(mix),
        densities=parse_values(densities, "density"),
        sharings=parse_values(sharings, "sharing ratio"),
        policies=("dfs", "blend"),
        engines=("overlap",),
        requests=cfg.grid_requests,
        model=cfg.model,
        gpu=cfg.gpu,
        seed=cfg.seed,
    )
    outcome = run_sweep(
        spec,
        out / f"{name}_cells",
        jobs=cfg.jobs,
        progress=cfg.progress,
        log=lambda msg: print(f"{name}: {msg}"),
    )
    if outcome.failed:
        raise RuntimeError(
            f"{name}: {len(outcome.failed)} cell(s) crashed, first {outcome.failed[0][0].key}: "
            f"{outcome.failed[0][1]} (see {out / f'{name}_cells' / 'errors.log'})"
        )
    infeasible = sum(r["status"] != "ok" for r in outcome.records)
    return spec, sweep_rows(outcome.records), infeasible


def grid_figure(
    name: str,
    title: str,
    mix: Sequence[str],
    densities: str,
    sharings: str,
    out: Path,
    cfg: FigureConfig,
    paper: tuple[float | None, float, float | None],
) -> FigureOutput:
    spec, rows, infeasible = run_grid(name, mix, densities, sharings, out, cfg)
    sp = [r["blend_speedup"] for r in rows if r["policy"] == "dfs" and r["blend_speedup"]]
    full_title = (
        f"{title}: {'+'.join(mix)}, {cfg.model} on {cfg.gpu}\n{cfg.grid_requests:,} requests "
        f"per cell, overlapping engine" + (f"; {infeasible} infeasible cell(s) grey" if infeasible else "")
    )
    paths = [
        write_csv(rows, out / f"{name}.csv", COLUMNS),
        plot_heatmaps(spec, rows, out / f"{name}.png", baselines=["dfs"], title=full_title),
    ]
    lo, hi, avg = paper
    paper_text = (f"paper {lo:.2f}-{hi:.2f}x" if lo else f"paper up to {hi:.2f}x") + (
        f", mean {avg:.3f}x" if avg else ""
    )
    ours = (
        f"{min(sp):.3f}-{max(sp):.3f}x, mean {mean(sp):.3f}x over {len(sp)} feasible cells"
        if sp
        else "no feasible cell"
    )
    line = f"{name}: blend over dfs {ours} ({paper_text}); {infeasible} of {len(spec.cells)} cells infeasible"
    return FigureOutput(name, paths, [line])


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    return grid_figure(
        "fig11",
        "Figure 11",
        ("burstgpt", "mmlu", "openvid"),
        cfg.grid_densities,
        cfg.grid_sharings,
        out,
        cfg,
        PAPER["fig11"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig11", run, argv)


if __name__ == "__main__":
    sys.exit(main())
