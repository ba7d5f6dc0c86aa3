"""Benchmark: how blend scales with data-parallel replicas (issue 15: DP = 2 >= 1.85x, DP = 4 >= 3.7x).

Per preset (trace1..4, ``--requests`` each, default the paper's 400K) and policy (blend, with dfs
and dfs-tuned for reference), simulates DP = 1, 2 and 4 on the overlap engine with the A100
built-in and the default estimator (sampled at 1 %), and prints each run's throughput, its scaling
over DP = 1 and, for blend, the target beside it; then how far apart the replicas finish (the
slowest replica's finish over the fastest's), the run's fraction of its step bound
(``breakdown.fraction_of_step_bound``) and the step bound's own scaling (DP = 1's bound over DP =
N's: what a run at DP = N reaches if it is as close to its bound as DP = 1 is to its own; below N
where one replica's longest output is a floor). Exits 1 when blend misses a target on any preset.

Throughputs are simulated, hence deterministic: the numbers do not depend on the machine's load.
At 400K one run takes ~15-60 s here (36 runs); ``--policies blend`` runs only the targets.

    .venv/bin/python benchmarks/bench_dp.py [--requests 400000] [--policies blend,dfs,dfs-tuned]
"""

from __future__ import annotations

import argparse

from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.simulation.result import SimResult
from blendsim.sim.simulation.run import simulate_policy
from blendsim.traces.mixer import make_preset

PRESETS = ("trace1", "trace2", "trace3", "trace4")
TARGETS = {2: 1.85, 4: 3.7}  # issue 15: blend's throughput at DP = N over its DP = 1 throughput
TARGET_POLICY = "blend"


def finish_spread(res: SimResult, dp: int) -> float:
    """The slowest replica's finish over the fastest's (1.0: all finish together)."""
    replica, end = res.steps["replica"], res.steps["time"]
    ends = [float(end[replica == k].max()) for k in range(dp)]
    return max(ends) / min(ends)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--policies", default="blend,dfs,dfs-tuned")
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    model = MODELS["llama-3-8b"]
    profile = builtin_profile("a100-80g").bind(model)
    missed: list[str] = []
    print(f"{args.requests:,} requests per preset, overlap engine, a100-80g, sampled estimator at 1 %")
    print(
        f"{'trace':<7} {'policy':<10} {'DP':>2} {'tok/s':>9} {'scaling':>8} {'target':>7} {'spread':>7} "
        f"{'% bound':>7} {'bound scaling':>13}"
    )
    for preset in args.presets.split(","):
        trace = make_preset(preset, requests=args.requests)
        for policy in args.policies.split(","):
            base = base_bound = 0.0
            for dp in (1, *TARGETS):
                res = simulate_policy(trace, policy, model, profile, dp=dp)
                tok = res.throughput_tok_s
                base = base or tok
                scaling = tok / base
                target = TARGETS.get(dp) if policy == TARGET_POLICY else None
                shown = f"{target:>7.2f}" if target is not None else f"{'':>7}"
                spread = f"{finish_spread(res, dp):>7.3f}" if dp > 1 else f"{'':>7}"
                breakdown = res.extra["breakdown"]
                base_bound = base_bound or breakdown["step_bound_s"]
                print(
                    f"{preset:<7} {policy:<10} {dp:>2} {tok:>9,.0f} {scaling:>7.3f}x {shown} {spread} "
                    f"{100 * breakdown['fraction_of_step_bound']:>7.1f} "
                    f"{base_bound / breakdown['step_bound_s']:>12.3f}x",
                    flush=True,
                )
                if target is not None and not scaling >= target:  # NaN misses too
                    missed.append(f"{preset} {policy} DP={dp}: {scaling:.3f}x < {target}x")
    for m in missed:
        print(f"MISSED: {m}")
    if not missed:
        print("all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
