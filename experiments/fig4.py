"""Figure 4: compute density rho over prompt length p and output length d, Llama-3-8B on the A100.

rho = Comp / Mem of one request (paper E3, E4: ``2 (p + d) P / F`` over ``(p d + d^2 / 2) kv / BW``,
no sharing) at the built-in A100 profile's datasheet peaks (the planner's density), on a log grid
of p and d from 1 to 32K tokens. The workload sources sit where their requests are on average,
marked with their set density (a ratio of sums over a few thousand generated requests, their
prefix sharing included: E6), beside the paper's Table 4 value. Paper (§2.5, blendserve.md):
rho falls quickly as d grows; MMLU and WildChat sit in the compute-heavy region, LIMO and OpenVid
in the memory-heavy one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.experiments.cells import resolve
from blendsim.experiments.common import FigureConfig
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import new_figure, save_png
from blendsim.experiments.results import write_csv
from blendsim.profiler.cost import comp_time, mem_time, set_density
from blendsim.traces.sources import SOURCES

GRID = np.logspace(0, 15, 61, base=2.0)  # 1 .. 32,768 tokens, four points per doubling
SOURCE_REQUESTS = {"full": 20_000, "quick": 4_000, "tiny": 500}
LABEL_OFFSETS = {"burstgpt": (-150, 6), "sharegpt": (-150, 6), "azure": (6, -12), "wildchat": (6, -12)}
COMPUTE_HEAVY, MEMORY_HEAVY = ("mmlu", "wildchat"), ("limo", "openvid")  # the paper's reading
COLUMNS = ("kind", "name", "prompt_len", "output_len", "comp_s", "mem_s", "rho", "paper_rho")


def grid_rows(model: Any, hw: Any) -> list[dict[str, Any]]:
    p, d = np.meshgrid(GRID, GRID)  # rows: d, columns: p
    comp, mem = comp_time(p, d, model, hw), mem_time(p, d, model, hw)
    return [
        {
            "kind": "grid",
            "name": "",
            "prompt_len": pi,
            "output_len": di,
            "comp_s": c,
            "mem_s": m,
            "rho": c / m,
        }
        for pi, di, c, m in zip(p.ravel(), d.ravel(), comp.ravel(), mem.ravel(), strict=True)
    ]


def source_rows(model: Any, hw: Any, n: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for name, source in SOURCES.items():
        block = source.generate(n, seed)
        p, d = block.prompt_len, block.output_len
        saved = float(block.saved_per_request().sum())
        rows.append(
            {
                "kind": "source",
                "name": name,
                "prompt_len": float(p.mean()),
                "output_len": float(d.mean()),
                "comp_s": float(comp_time(p, d, model, hw).sum()),
                "mem_s": float(mem_time(p, d, model, hw).sum()),
                "rho": set_density(p, d, model, hw, saved),
                "paper_rho": source.paper_density or None,
            }
        )
    return rows


def _label_spots(rho: np.ndarray) -> list[tuple[float, float]]:
    """Where the contour labels go: on each level's line at p = 8 tokens."""
    column = rho[:, 12]  # p = 8
    return [(8.0, float(GRID[int(np.argmin(np.abs(np.log(column / level))))])) for level in (0.1, 1.0, 10.0)]


def plot(grid: list[dict[str, Any]], sources: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib.colors

    rho = np.asarray([r["rho"] for r in grid]).reshape(len(GRID), len(GRID))
    fig, axes = new_figure(1, 1, width=7.2, height=5.6)
    ax = axes[0, 0]
    ax.set_xscale("log", base=2)  # before the contours, so their labels break the lines in log space
    ax.set_yscale("log", base=2)
    mesh = ax.pcolormesh(GRID, GRID, rho, norm=matplotlib.colors.LogNorm(), cmap="RdYlBu", shading="nearest")
    fig.colorbar(mesh, ax=ax, label="compute density ρ = Comp / Mem (log scale)")
    lines = ax.contour(GRID, GRID, rho, levels=[0.1, 1.0, 10.0], colors="black", linewidths=0.9)
    ax.clabel(lines, fmt=lambda v: f"ρ = {v:g}", fontsize=7.5, manual=_label_spots(rho))
    for s in sources:
        ax.plot(s["prompt_len"], s["output_len"], "k*", markersize=9)
        paper = f", paper {s['paper_rho']:g}" if s["paper_rho"] else ""
        ax.annotate(
            f"{s['name']} (ρ {s['rho']:.3g}{paper})",
            (s["prompt_len"], s["output_len"]),
            textcoords="offset points",
            xytext=LABEL_OFFSETS.get(s["name"], (6, 4)),
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
        )
    ax.set_xlabel("prompt length p (tokens)")
    ax.set_ylabel("output length d (tokens)")
    ax.set_title(title, fontsize=9)
    return save_png(fig, path)


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    model, profile = resolve(cfg.model, cfg.gpu, None, 1)
    hw = profile.hardware
    grid = grid_rows(model, hw)
    sources = source_rows(model, hw, SOURCE_REQUESTS[cfg.scale], cfg.seed)
    title = (
        f"Figure 4: ρ over (p, d), {model.name} on {hw.name} datasheet peaks\n★ a source's mean "
        "lengths, labelled with its set density (E6, sharing included)"
    )
    paths = [
        write_csv([*grid, *sources], out / "fig4.csv", COLUMNS),
        plot(grid, sources, out / "fig4.png", title),
    ]
    return FigureOutput("fig4", paths, claims(model, hw, sources))


def claims(model: Any, hw: Any, sources: list[dict[str, Any]]) -> list[str]:
    d = np.array([1, 16, 256, 4096])
    rho = comp_time(1024, d, model, hw) / mem_time(1024, d, model, hw)
    by = {s["name"]: s["rho"] for s in sources}
    heavy = all(by[n] > 1 for n in COMPUTE_HEAVY) and all(by[n] < 1 for n in MEMORY_HEAVY)
    return [
        "fig4: at p = 1,024, rho = "
        + ", ".join(f"{r:.3g} (d = {x:,})" for r, x in zip(rho, d, strict=True))
        + " (paper: rho falls quickly as d grows)",
        "fig4: set densities "
        + ", ".join(
            f"{s['name']} {s['rho']:.3g}" + (f" (paper {s['paper_rho']:g})" if s["paper_rho"] else "")
            for s in sources
        )
        + f"; MMLU and WildChat above 1, LIMO and OpenVid below: {'yes' if heavy else 'no'} (paper: yes)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig4", run, argv)


if __name__ == "__main__":
    sys.exit(main())
