"""Table 3: data parallelism. The four presets on DP = 1, 2 and 4 replicas (one A100 each).

The plan is carved into one contiguous share per replica (blend: one pair of scanners per replica),
so the only sharing lost is at the cuts. Scaling = throughput(DP) / (DP x throughput(1)). Paper (§7.7):
near-linear scaling; one root-to-leaf path of sharing lost per extra replica.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from blendsim.experiments.common import (
    FigureConfig,
    add_speedups,
    mean,
    preset_runs,
    run_all,
    tagged,
)
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import new_figure, save_png
from blendsim.experiments.results import write_csv

DPS = (1, 2, 4)
POLICIES = ("dfs", "blend")
COLUMNS = (
    "trace",
    "dp",
    "policy",
    "requests",
    "throughput_tok_s",
    "scaling",
    "sharing",
    "optimal_sharing",
    "fraction_of_optimal",
    "blend_speedup",
)


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    presets = cfg.study_presets
    runs = [r for dp in DPS for r in preset_runs(cfg, POLICIES, ("overlap",), presets, dp=dp)]
    rows = add_speedups(tagged(runs, run_all(runs, cfg, cache, "table3")))
    base = {(r["trace"], r["policy"]): r["throughput_tok_s"] for r in rows if r["dp"] == 1}
    for r in rows:
        r["scaling"] = r["throughput_tok_s"] / (r["dp"] * base[(r["trace"], r["policy"])])
    header = (
        ["trace", "policy"] + [f"DP={dp} tok/s (scaling)" for dp in DPS] + [f"sharing DP={dp}" for dp in DPS]
    )
    table = []
    for t in presets:
        for p in POLICIES:
            cells = {r["dp"]: r for r in rows if r["trace"] == t and r["policy"] == p}
            table.append(
                [t.replace("trace", "Trace#"), p]
                + [f"{cells[dp]['throughput_tok_s']:,.0f} ({cells[dp]['scaling']:.2f})" for dp in DPS]
                + [f"{cells[dp]['sharing']:.3f}" for dp in DPS]
            )
    fig, axes = new_figure(1, 1, width=11.0, height=0.3 * len(table) + 1.0)
    ax = axes[0, 0]
    ax.axis("off")
    tab = ax.table(cellText=table, colLabels=header, loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1, 1.35)
    n = rows[0]["requests"]
    ax.set_title(
        f"Table 3: data-parallel scaling, {cfg.model} on DP x 1 {cfg.gpu}, {n:,} requests per preset, "
        "overlapping engine\nscaling = throughput / (DP x DP=1 throughput)",
        fontsize=9,
    )
    paths = [write_csv(rows, out / "table3.csv", COLUMNS), save_png(fig, out / "table3.png")]
    lines = []
    for dp in DPS[1:]:
        sc = [r["scaling"] for r in rows if r["dp"] == dp and r["policy"] == "blend"]
        sp = [r["blend_speedup"] for r in rows if r["dp"] == dp and r["policy"] == "dfs"]
        lines.append(
            f"table3 [DP={dp}]: blend scaling {min(sc):.3f}-{max(sc):.3f} (mean {mean(sc):.3f}; paper: "
            f"near-linear); blend over dfs mean {mean(sp):.3f}x"
        )
    return FigureOutput("table3", paths, lines)


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("table3", run, argv)


if __name__ == "__main__":
    sys.exit(main())
