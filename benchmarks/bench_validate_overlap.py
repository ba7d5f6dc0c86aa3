"""The overlapping engine against a real overlapped execution on this CPU: issue 14's targets.

Runs ``blendsim validate --device cpu --engine overlap`` (the full trace, or ``--quick``) ``--runs``
times into ``OUT/run<i>`` on one kernel profile (made once in ``OUT`` unless ``--profile`` is given),
and prints per run and as the median over runs: each policy's throughput error (simulated /
measured - 1; target |error| <= 5 %), blend's speedup over fifo and dfs measured and simulated and
their difference in points (target <= 2), and what overlap bought on the hardware (overlapped over
the same steps run serially on both cores). Run it alone: two pinned threads measure nothing
useful while another process competes for the cores.

    .venv/bin/python benchmarks/bench_validate_overlap.py [--quick] [--runs 3] [--profile FILE]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

from blendsim.executor.validate import MODEL, ValidationSetup, kernel_profile, run_validation
from blendsim.profiler.specs import get_model

ERROR_TARGET = 0.05  # per-policy throughput error
POINTS_TARGET = 2.0  # blend's speedup, simulated minus measured, in points


def one_run(
    out: Path, profile: Path, quick: bool
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(error per policy, speedup points per baseline, overlapped / serial per policy) of one run."""
    setup = ValidationSetup()
    setup = dataclasses.replace(setup, engine=dataclasses.replace(setup.engine, engine="overlap"))
    comp = run_validation(
        out, quick=quick, backends=("torch",), profile_path=str(profile), setup=setup, say=print
    )
    d = comp.to_dict()
    errors = {e["policy"]: e["error"] for e in d["entries"]}
    points = {s["baseline"]: 100 * (s["simulated"] - s["measured"]) for s in d["speedups"]}
    gain = {
        e["policy"]: e["measured_tok_s"] / e["serial_reference"]["measured_tok_s"]
        for e in d["entries"]
        if e.get("serial_reference", {}).get("measured_tok_s")
    }
    for s in d["speedups"]:
        print(f"  blend over {s['baseline']}: measured {s['measured']:.3f}x, simulated {s['simulated']:.3f}x")
    return errors, points, gain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the quick trace (CI's), 200 steps per policy")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", default=None, help="kernel profile JSON (default: profile this CPU now)")
    ap.add_argument("--out", default="/tmp/bench_validate_overlap")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    profile = Path(args.profile) if args.profile else out / "profile_cpu.json"
    if not args.profile:
        kernel_profile(out, get_model(MODEL), 1, print)
    runs = [one_run(out / f"run{i}", profile, args.quick) for i in range(args.runs)]
    ok = True
    print(f"\nmedian of {args.runs} runs ({'quick' if args.quick else 'full'} trace, profile {profile}):")
    for policy in runs[0][0]:
        err = statistics.median(r[0][policy] for r in runs)
        gain = statistics.median(r[2].get(policy, float("nan")) for r in runs)
        met = abs(err) <= ERROR_TARGET
        ok &= met
        print(
            f"  {policy:6s} throughput error {err:+.1%} (target |error| <= {ERROR_TARGET:.0%}: "
            f"{'met' if met else 'NOT met'}); overlapped / serial on both cores {gain:.3f}x"
        )
    for base in runs[0][1]:
        pts = statistics.median(r[1][base] for r in runs)
        met = abs(pts) <= POINTS_TARGET
        ok &= met
        print(
            f"  blend over {base}: speedup error {pts:+.1f} points (target <= {POINTS_TARGET:.0f}: "
            f"{'met' if met else 'NOT met'})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
