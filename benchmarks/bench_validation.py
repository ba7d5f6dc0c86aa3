"""Torch step replay vs the simulator's prediction on this CPU: per-step MAPE and throughput error.

Profiles this CPU for SmolLM2-135M (quick grid, one thread) unless --profile is given, simulates the
scaled validation trace (:mod:`blendsim.executor.validation_trace`) under each policy with the
vLLM-CPU-like engine configuration, replays every simulated step (or --max-steps spread over the
run) on torch, and prints per policy: step MAPE (on the profile's clock and on wall time), the
throughput error (simulated / measured - 1) and the per-operator bias. Target: <= 5 % (the BlendServe
paper reports 0.91 % on its speedups; Vidur under 9 %).

A reference GEMM (512 tokens through all layers) is timed when the profile is made and before and
after each replay: on a shared machine its drift bounds how far the device itself moved between
profiling and replay, which the step model cannot know.

    .venv/bin/python benchmarks/bench_validation.py [--policies fifo,dfs,blend] [--max-steps N]
        [--profile FILE] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from blendsim.executor.compare import Comparison, entry_from_replay
from blendsim.executor.torch_backend import ReplayOptions, replay_policy
from blendsim.executor.validate import MODEL, ValidationSetup, kernel_profile
from blendsim.executor.validation_trace import validation_trace
from blendsim.profiler.kernels import Microbench
from blendsim.profiler.models import get_model
from blendsim.profiler.profile import load_profile

TARGET = 0.05


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", default="fifo,dfs,blend")
    ap.add_argument(
        "--max-steps", type=int, default=None, help="steps per policy, spread evenly (default all)"
    )
    ap.add_argument("--profile", default=None, help="profile JSON (default: profile this CPU now)")
    ap.add_argument("--quick", action="store_true", help="the quick (quarter-size) trace")
    ap.add_argument("--out", default="/tmp/bench_validation")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = get_model(MODEL)
    setup = ValidationSetup()
    probe = Microbench(model, "cpu", reps=5)
    ref0 = probe.time_gemm(512)
    t0 = time.perf_counter()
    profile = (load_profile(args.profile) if args.profile else kernel_profile(out, model, 1, print)).bind(
        model
    )
    print(
        f"profile {profile.name} ({time.perf_counter() - t0:.0f} s); reference GEMM(512) {ref0 * 1e3:.1f} ms"
    )
    trace = validation_trace(args.quick)
    print(
        f"trace: {len(trace)} requests, {int(trace.prompt_len.sum() + trace.output_len.sum()):,} tokens, "
        f"sharing {trace.sharing():.3f}"
    )
    entries = []
    for policy in args.policies.split(","):
        before = probe.time_gemm(512)
        t0 = time.perf_counter()
        replay = replay_policy(
            trace,
            policy,
            model,
            profile,
            setup.engine_config(model),
            ReplayOptions(max_steps=args.max_steps, select="even", threads=1),
        )
        after = probe.time_gemm(512)
        replay.write(str(out))
        e = entry_from_replay(replay)
        entries.append(e)
        x = e.extra
        print(
            f"\n{policy}: {x['steps']} of {x['simulated_steps']} steps replayed in "
            f"{time.perf_counter() - t0:.0f} s ({x['clock']} clock)"
        )
        print(
            f"  step MAPE {x['step_mape']:.1%} (wall clock {x['step_mape_wall']:.1%}); throughput measured "
            f"{e.measured_tok_s:,.0f} tok/s, simulated {e.simulated_tok_s:,.0f} tok/s, error {e.error:+.1%} "
            f"(target |error| <= {TARGET:.0%}: {'met' if abs(e.error) <= TARGET else 'NOT met'})"
        )
        print(
            f"  reference GEMM drift since profiling: before {before / ref0 - 1:+.1%}, "
            f"after {after / ref0 - 1:+.1%}"
        )
        for op, v in x["operators"].items():
            bias = f"bias {v['bias']:+.1%}, MAPE {v['mape']:.1%}" if "bias" in v else ""
            print(
                f"  {op:13s} measured {v['measured_s']:8.2f} s  predicted {v['predicted_s']:8.2f} s  {bias}"
            )
    comp = Comparison(entries, {"device": "cpu", "profile": profile.name, "model": model.name})
    comp.write(out)
    for s in comp.to_dict()["speedups"]:
        print(
            f"blend over {s['baseline']}: measured {s['measured']:.3f}x, simulated {s['simulated']:.3f}x "
            f"(error {s['error']:+.1%})"
        )
    print(f"wrote {out / 'comparison.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
