"""``blendsim sweep``: a density (x sharing) grid, every policy on every cell, table + CSV + JSON + figure."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from blendsim.common_cli import (
    add_dp_option,
    add_engine_options,
    add_estimation_options,
    add_hardware_options,
    add_policy_option,
    add_seed_option,
    check_counts,
    engine_configs,
    estimation_config,
    policies,
)
from blendsim.errors import UserError
from blendsim.experiments.cells import resolve
from blendsim.experiments.grid import DEFAULT_DENSITIES, DEFAULT_MIX, SweepSpec, file_digest, parse_values
from blendsim.experiments.results import (
    COLUMNS,
    format_table,
    summary,
    sweep_rows,
    write_csv,
)
from blendsim.experiments.runners import check_reachable, default_jobs, import_ray
from blendsim.experiments.sweep import SweepOutcome, run_sweep
from blendsim.limits import check_run_size
from blendsim.options import non_defaults, parse_choice_list
from blendsim.output_folders import ResumableFolder, resumable_folder
from blendsim.outputs import write_json
from blendsim.provenance import provenance

# The paper's appendix trace size (blendserve.md §6.2: 40,000 requests; the mixer's preset size too).
# The default sweep (13 densities x 4 policies, overlap engine, 2 processes) took 106-140 s on the
# 2-core development machine under a load average of 7-8 (docs/experiments.md), inside its 3 minutes;
# fewer requests let the few 16K-token videos' critical path dominate every policy's makespan.
DEFAULT_REQUESTS = 40_000
DEFAULT_SHARING = 0.35  # the paper's "high sharing" (Table 2, Trace#1 and #2)
# the paper's baselines and blend (issue 15: the default set stays, for the main job's time)
DEFAULT_POLICIES = "fifo,dfs,balance,blend"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="density x sharing grid: simulate every policy on every cell",
        description="Build one trace per grid cell (mixer: target density and sharing ratio), simulate "
        "every policy on it, and write results.csv, results.json and sweep.png into --out. "
        "Resumable: rerun the same command to finish a killed sweep.",
    )
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--sharing-ratio", type=float, help=f"one sharing ratio (default {DEFAULT_SHARING})")
    grid.add_argument(
        "--sharing-ratios",
        metavar="SPEC",
        help="several sharing ratios, A:B:STEP or a list (a 2-D grid gives heatmaps)",
    )
    p.add_argument(
        "--densities",
        default=DEFAULT_DENSITIES,
        metavar="SPEC",
        help=f"compute densities, A:B:STEP (inclusive) or a list (default {DEFAULT_DENSITIES})",
    )
    p.add_argument("--mix", default=",".join(DEFAULT_MIX), help="trace sources to mix (default %(default)s)")
    add_policy_option(p, default=DEFAULT_POLICIES)
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"requests per trace (default {DEFAULT_REQUESTS}, sized for a 3-minute default sweep)",
    )
    add_hardware_options(p)
    add_dp_option(p)
    add_seed_option(p, "traces and the planning")
    p.add_argument("--out", default="blendsim-sweep", help="output directory (default %(default)s)")
    run = p.add_mutually_exclusive_group()
    run.add_argument(
        "--jobs", type=int, default=None, help=f"local worker processes (default all cores: {default_jobs()})"
    )
    run.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run cells as Ray tasks on this cluster (host:port, ray://host:port or auto); "
        "needs pip install 'blendsim[ray]'",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_estimation_options(p)
    add_engine_options(p, several_engines=True)
    p.set_defaults(func=cmd_sweep)


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    check_counts(args)
    configs = engine_configs(args)
    if args.sharing_ratios is not None:
        sharings = parse_values(args.sharing_ratios, "sharing ratio")
    else:
        sharings = (round(DEFAULT_SHARING if args.sharing_ratio is None else args.sharing_ratio, 6),)
    gpu = None if args.profile else (args.gpu or "a100-80g")
    return SweepSpec(
        mix=parse_choice_list(args.mix, _sources(), "trace source", all_words=()),
        densities=parse_values(args.densities, "density"),
        sharings=sharings,
        policies=policies(args),
        engines=tuple(c.engine for c in configs),
        engine_options=non_defaults(configs[0], skip=("engine",)),
        estimation_options=non_defaults(estimation_config(args)),
        requests=DEFAULT_REQUESTS if args.requests is None else args.requests,
        model=args.model,
        gpu=gpu,
        profile=args.profile,
        profile_digest=file_digest(args.profile) if args.profile else None,
        tp=args.tp,
        dp=args.dp,
        seed=args.seed,
    )


def _sources() -> list[str]:
    from blendsim.traces.sources import SOURCES

    return list(SOURCES)


def finish(outcome: SweepOutcome, out: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """Write results.csv, results.json and sweep.png for the finished cells; return rows and paths."""
    spec = outcome.spec
    rows = sweep_rows(outcome.records)
    sums = {e: {b: summary(rows, e, b) for b in spec.policies if b != "blend"} for e in spec.engines}
    grid = {"densities": list(spec.densities), "sharings": list(spec.sharings)}
    paths = [
        write_csv(rows, out / "results.csv", COLUMNS),
        write_json(
            out / "results.json",
            {
                "spec": {**spec.identity(), **grid, "profile": spec.profile},
                "provenance": provenance(seed=spec.seed, profile=spec.profile or spec.gpu),
                "summary": sums,
                "wall_s": outcome.wall_s,
                "cells": outcome.records,
            },
            indent=1,
            sort_keys=True,
        ),
    ]
    if any(r["status"] == "ok" for r in outcome.records):
        from blendsim.experiments.sweep_figure import plot_sweep  # matplotlib: only when plotting

        paths.append(plot_sweep(spec, rows, out / "sweep.png"))
    return rows, paths


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    jobs = args.jobs or default_jobs()
    # every input check before any work: model / GPU / profile / TP, memory, --out, Ray
    resolve(spec.model, spec.gpu, spec.profile, spec.tp)
    check_run_size(spec.requests, spec.dp, at_once=1 if args.ray else min(jobs, len(spec.cells)))
    if args.ray:
        import_ray()
        check_reachable(args.ray)
    with resumable_folder(args.out, "--out", "sweep", spec.identity()) as folder:
        folder.record.update(seed=spec.seed, profile=spec.profile or spec.gpu)
        return _sweep(args, spec, folder, jobs)


def _sweep(args: argparse.Namespace, spec: SweepSpec, folder: ResumableFolder, jobs: int) -> int:
    out = folder.path
    default_note = " (the default)" if args.requests is None else ""
    where = f"Ray at {args.ray}" if args.ray else f"{jobs} local process(es)"
    print(f"sweep: {spec.describe()}")
    print(f"sweep: {spec.requests} requests per trace{default_note}; {where}; output in {out}/")
    start = time.perf_counter()
    outcome = run_sweep(spec, folder, jobs=jobs, ray_address=args.ray, progress=not args.quiet)
    rows, paths = finish(outcome, out)
    print()
    print(format_table(spec, rows))
    infeasible = sum(r["status"] != "ok" for r in outcome.records)
    print(
        f"\n{len(outcome.records)} of {len(spec.cells)} cells done ({outcome.skipped} from an earlier run, "
        f"{infeasible} infeasible) in {time.perf_counter() - start:.1f} s"
    )
    print("wrote " + ", ".join(str(p) for p in paths))
    if outcome.failed:
        folder.complete = False
        print(
            f"blendsim: {len(outcome.failed)} cell(s) failed, e.g. {outcome.failed[0][0].key}: "
            f"{outcome.failed[0][1]}; see {out / 'errors.log'}; rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
