"""``blendsim figures``: every paper figure and table, and the studies beyond the paper.

Runs the scripts in :data:`FIGURES` order into ``--out``; they share one cache of simulation runs
(``OUT/.cache``), so the preset runs behind fig7, fig9, table3 and the beyond-paper studies are simulated
once. Writes ``OUT/summary.md``: each script's files and its numbers next to the paper's. A script
that fails is reported and the others still run (exit status 1). ``OUT`` is resumable: a rerun keeps
the scripts an earlier run of the same scale finished (docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from blendsim.errors import UserError
from blendsim.experiments.figure_base import FIGURES, FigureOutput, figures_identity, run_figures
from blendsim.options import parse_choice_list
from blendsim.output_folders import resumable_folder
from blendsim.outputs import atomic_output


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "figures",
        help="regenerate the paper's figures and tables (PNG + CSV each)",
        description=f"Run every figure/table script ({', '.join(FIGURES)}) and write PNG + CSV files "
        "and summary.md (our numbers next to the paper's) into --out.",
    )
    scale = p.add_mutually_exclusive_group()
    scale.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="scale",
        help="smaller traces and coarser grids (about 3 minutes on an idle 2-core machine; "
        "within 15 under load)",
    )
    scale.add_argument(
        "--tiny",
        action="store_const",
        const="tiny",
        dest="scale",
        help="tiny traces (a smoke test; numbers are not meaningful)",
    )
    p.add_argument("--out", default="figures", help="output directory (default %(default)s)")
    p.add_argument(
        "--only", default="all", help=f"comma list of scripts to run (default all: {', '.join(FIGURES)})"
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default all cores)")
    p.set_defaults(func=cmd_figures)


def write_summary(results: list[FigureOutput | str], out: Path, scale: str, wall_s: float) -> Path:
    lines = [f"# blendsim figures ({scale} scale)", "", f"Total wall time {wall_s:.0f} s.", ""]
    for res in results:
        if isinstance(res, str):
            lines += [f"## {res.split(':')[0]}", "", f"**{res}**", ""]
            continue
        lines += [f"## {res.name} ({res.wall_s:.0f} s)", ""]
        lines += [f"![{p.name}]({p.name})" for p in res.paths if p.suffix == ".png"]
        lines += ["", *[f"- {h}" for h in res.headline], ""]
        lines += ["Files: " + ", ".join(f"`{p.name}`" for p in res.paths), ""]
    path = out / "summary.md"
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def cmd_figures(args: argparse.Namespace) -> int:
    names = list(parse_choice_list(args.only, FIGURES, "figure script"))
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    scale = args.scale or "full"
    with resumable_folder(args.out, "--out", "figures", figures_identity(scale)) as folder:
        start = time.perf_counter()
        results = run_figures(names, folder, scale, args.jobs)
        wall = time.perf_counter() - start
        summary = write_summary(results, folder.path, scale, wall)
    failed = [r for r in results if isinstance(r, str)]
    print(
        f"figures: {len(results) - len(failed)} of {len(results)} scripts done in {wall:.0f} s; see {summary}"
    )
    for line in failed:
        print(f"blendsim: {line}", file=sys.stderr)
    return 1 if failed else 0
