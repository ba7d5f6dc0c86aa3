"""Benchmark: plan + simulate a 400K-request ``trace1`` with ``blend`` (Llama-3-8B, built-in A100).

Prints plan time, simulate time, steps per second and the process's peak memory, each next to its
target (issue 6: plan + simulate <= 30 s and <= 4 GB on the development machine). For scale, Vidur
takes about 20 s for 40K short requests (design.md "Simulation").

    .venv/bin/python benchmarks/bench_simulate.py [--requests N] [--policy P] [--engine E]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from blendsim.profiler.profile import builtin_profile
from blendsim.profiler.specs import MODELS
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.run import simulate_policy
from blendsim.traces.mixer import make_preset

TARGET_S = 30.0
TARGET_GB = 4.0


def peak_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb * 1024 / 1e9 if sys.platform != "darwin" else kb / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--preset", default="trace1")
    ap.add_argument("--policy", default="blend")
    ap.add_argument("--engine", default="overlap")
    args = ap.parse_args()
    model = MODELS["llama-3-8b"]
    profile = builtin_profile("a100-80g").bind(model)
    t0 = time.perf_counter()
    trace = make_preset(args.preset, requests=args.requests)
    make_s = time.perf_counter() - t0
    rss_trace = peak_rss_gb()
    cpu0 = time.process_time()
    res = simulate_policy(trace, args.policy, model, profile, EngineConfig(engine=args.engine))
    cpu = time.process_time() - cpu0
    total = res.plan_s + res.sim_s
    steps_per_s = res.steps_run / res.sim_s if res.sim_s else float("inf")
    peak = peak_rss_gb()
    print(
        f"{args.preset}, {len(trace):,} requests, {args.policy}, {args.engine} engine "
        f"(trace generation {make_s:.1f} s, not counted; peak RSS after it {rss_trace:.2f} GB)"
    )
    print(f"  plan            {res.plan_s:8.2f} s")
    print(
        f"  simulate        {res.sim_s:8.2f} s   {res.steps_run:,} steps, {steps_per_s:,.0f} steps/s, "
        f"{len(trace) / res.sim_s:,.0f} requests/s"
    )
    print(
        f"  CPU time        {cpu:8.2f} s   (plan + simulate, this process; wall time above includes "
        f"waiting for a shared machine)"
    )
    print(
        f"  plan + simulate {total:8.2f} s   target <= {TARGET_S:.0f} s: ratio {total / TARGET_S:.2f} "
        f"({'met' if total <= TARGET_S else 'MISSED'})"
    )
    print(
        f"  peak memory     {peak:8.2f} GB  target <= {TARGET_GB:.0f} GB: ratio {peak / TARGET_GB:.2f} "
        f"({'met' if peak <= TARGET_GB else 'MISSED'})"
    )
    print(
        f"  result: {res.throughput_tok_s:,.0f} tok/s simulated, {res.fraction_of_optimal * 100:.1f} % of "
        f"optimum, sharing {res.sharing:.3f} of {res.optimal_sharing:.3f}, {res.preemptions} preemptions"
    )
    b = res.extra["breakdown"]
    print(
        f"  breakdown: compute busy {b['compute_busy']:.2f}, memory busy {b['memory_busy']:.2f}, "
        f"fixed per-step "
        f"cost {b['fixed_cost_s']:,.0f} s, {b['fraction_of_step_bound'] * 100:.1f} % of the step bound "
        f"({b['step_bound_s']:,.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
