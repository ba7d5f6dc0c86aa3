"""The shape every figure script shares: ``run(out, cfg, cache) -> FigureOutput`` and a ``main``.

Each script is runnable as ``python -m blendsim.experiments.<name> [--quick|--tiny] --out DIR`` and
callable from ``blendsim figures``. ``headline`` lines put our number next to the paper's; the figures
command collects them into ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blendsim.errors import EXIT_USER_ERROR, UserError
from blendsim.experiments.common import SCALES, FigureConfig
from blendsim.outputs import output_dir

# the figure and table scripts, in the order `blendsim figures` runs them
FIGURES = (
    "table1",
    "fig4",
    "fig3",
    "fig7",
    "fig8",
    "fig9",
    "fig10",
    "fig11",
    "fig12",
    "fig13_15",
    "table3",
    "serial_vs_overlap",
    "overlap_sensitivity",
    "estimation_sensitivity",
    "gpu_profiles",
    "published_throughput",
)


@dataclass
class FigureOutput:
    name: str
    paths: list[Path] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # "ours vs paper" lines
    wall_s: float = 0.0


Runner = Callable[[Path, FigureConfig, "Path | None"], FigureOutput]


def figure_main(name: str, run: Runner, argv: Sequence[str] | None = None) -> int:
    """``python -m blendsim.experiments.<name>``: one script on its own."""
    parser = argparse.ArgumentParser(
        prog=f"python -m blendsim.experiments.{name}",
        description=(run.__module__ and sys.modules[run.__module__].__doc__),
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="scale",
        help="smaller traces (the `blendsim figures --quick` scale)",
    )
    scale.add_argument(
        "--tiny", action="store_const", const="tiny", dest="scale", help="tiny traces (seconds; for tests)"
    )
    parser.add_argument("--out", default="figures", help="output directory (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default all cores)")
    args = parser.parse_args(argv)
    cfg = SCALES[args.scale or "full"]
    if args.jobs:
        cfg = cfg.with_(jobs=args.jobs)
    try:
        out = output_dir(args.out, "--out")
        start = time.perf_counter()
        result = run(out, cfg, out / ".cache")
    except UserError as exc:
        print(f"blendsim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    for line in result.headline:
        print(line)
    print(f"{name}: wrote {', '.join(str(p) for p in result.paths)} in {time.perf_counter() - start:.1f} s")
    return 0
