"""The shape every figure script shares: ``run(out, cfg, cache) -> FigureOutput``, a ``main``, and
:func:`run_figures`, which runs scripts into one resumable output folder.

Each script is runnable as ``python -m blendsim.experiments.<name> [--quick|--tiny] --out DIR`` and
callable from ``blendsim figures``. ``headline`` lines put our number next to the paper's; the figures
command collects them into ``OUT/summary.md``. ``OUT`` is a resumable folder
(:func:`blendsim.outputs.resumable_folder`, identity: the scale and blendsim's version): a script
whose files are all there from an earlier run is not run again.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blendsim import __version__
from blendsim.errors import EXIT_FAILURE, EXIT_USER_ERROR, UserError
from blendsim.experiments.common import SCALES, FigureConfig
from blendsim.output_folders import ResumableFolder, resumable_folder

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
    "robustness",
    "gpu_profiles",
    "published_throughput",
)


@dataclass
class FigureOutput:
    name: str
    paths: list[Path] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # "ours vs paper" lines
    wall_s: float = 0.0

    def as_part(self, out: Path) -> dict[str, Any]:
        """What the folder's manifest keeps of a finished script (paths relative to ``out``)."""
        return {
            "files": [str(p.relative_to(out)) for p in self.paths],
            "headline": self.headline,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_part(cls, name: str, out: Path, part: Any) -> FigureOutput | None:
        """The output an earlier run recorded, if every file of it is still in ``out``."""
        if not isinstance(part, dict):
            return None
        paths = [out / f for f in part.get("files", [])]
        if not paths or not all(p.is_file() for p in paths):
            return None
        return cls(name, paths, list(part.get("headline", [])), float(part.get("wall_s", 0.0)))


Runner = Callable[[Path, FigureConfig, "Path | None"], FigureOutput]


def run_figures(
    names: Sequence[str],
    out: Path | ResumableFolder,
    scale: str,
    jobs: int | None = None,
    preset_requests: int | None = None,
) -> list[FigureOutput | str]:
    """Run ``names`` in order into ``out`` (a folder, or the open resumable folder of the figures);
    each entry is the script's output, or the one-line reason it failed. Scripts finished in an
    earlier run of the same scale (and preset size, when one replaces the scale's) are kept, not run
    again."""
    cfg = SCALES[scale]
    cfg = cfg if jobs is None else cfg.with_(jobs=jobs)
    cfg = cfg if preset_requests is None else cfg.with_(preset_requests=preset_requests)
    results: list[FigureOutput | str] = []
    identity = figures_identity(scale, preset_requests)
    with resumable_folder(out, "figures folder", "figures", identity) as folder:
        for name in names:
            earlier = FigureOutput.from_part(name, folder.path, folder.parts.get(name))
            if earlier is not None:
                print(f"[{name}] done in an earlier run: {', '.join(p.name for p in earlier.paths)}")
                results.append(earlier)
                continue
            print(f"[{name}] running ({scale} scale)", flush=True)
            results.append(_run_one(name, folder.path, cfg))
            if isinstance(results[-1], str):
                folder.complete = False
                print(f"  {results[-1]}", file=sys.stderr, flush=True)
            else:
                folder.finished(name, results[-1].as_part(folder.path))
    return results


def figures_identity(scale: str, preset_requests: int | None = None) -> dict[str, Any]:
    """What decides a figures folder's contents: the scale, the code, and the presets' size when it
    replaces the scale's (absent otherwise, so earlier folders keep their identity)."""
    identity: dict[str, Any] = {"scale": scale, "blendsim_version": __version__}
    if preset_requests is not None:
        identity["preset_requests"] = preset_requests
    return identity


def _run_one(name: str, out: Path, cfg: FigureConfig) -> FigureOutput | str:
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"blendsim.experiments.{name}")
        res: FigureOutput = module.run(out, cfg, out / ".cache")
    except UserError as exc:
        return f"{name}: error: {exc}"
    except Exception as exc:  # one broken script must not cost the others
        with open(out / "errors.log", "a") as fh:
            fh.write(f"--- {name}\n{traceback.format_exc()}\n")
        return f"{name}: failed: {type(exc).__name__}: {exc} (traceback in {out / 'errors.log'})"
    res.wall_s = time.perf_counter() - start
    for line in res.headline:
        print(f"  {line}")
    print(f"  wrote {', '.join(p.name for p in res.paths)} in {res.wall_s:.0f} s", flush=True)
    return res


def figure_main(name: str, run: Runner, argv: Sequence[str] | None = None) -> int:
    """``python -m blendsim.experiments.<name>``: one script on its own."""
    from blendsim.options import Parser

    parser = Parser(
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
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per preset trace, replacing the scale's (e.g. 40000 for the full grids at 40K)",
    )
    args = parser.parse_args(argv)
    for flag, value in (("--jobs", args.jobs), ("--requests", args.requests)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    scale_name = args.scale or "full"

    def body() -> int:
        identity = figures_identity(scale_name, args.requests)
        with resumable_folder(args.out, "--out", "figures", identity) as folder:
            (result,) = run_figures([name], folder, scale_name, args.jobs, args.requests)
        if isinstance(result, str):
            return EXIT_USER_ERROR if ": error: " in result else EXIT_FAILURE
        print(f"{name}: wrote {', '.join(str(p) for p in result.paths)} in {result.wall_s:.1f} s")
        return 0

    from blendsim.cli import run_command  # the CLI's exit statuses and messages, for this entry too

    return run_command(body, [f"python -m blendsim.experiments.{name}", *(argv or sys.argv[1:])])
