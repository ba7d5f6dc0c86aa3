"""Plan time for a 400K-request trace (target: <= 10 s on the dev machine for every policy).

Uses the Table 2 preset ``trace1`` at 400K requests when the trace mixer is available, otherwise a
synthetic mix of the same shape (API requests under one system prompt, MMLU-like subjects with a
shared few-shot prefix, a few hundred long-output videos).

    .venv/bin/python benchmarks/bench_plan.py [--requests 400000] [--policies blend,dfs]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from blendsim.sim.planning.planner import make_plan
from blendsim.traces.trace import Trace

TARGET_S = 10.0


def synthetic_trace(n: int, seed: int = 0) -> Trace:
    """~82 % API (system 5 + body), ~18 % MMLU-like (system 8 + 57 subjects + question), 0.05 % video."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=n, p=[0.8195, 0.18, 0.0005])
    counts = np.where(kind == 1, 3, 2)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    ids = np.empty(offsets[-1], dtype=np.int64)
    lens = np.empty(offsets[-1], dtype=np.int64)
    s = offsets[:-1]
    ids[s] = kind  # system prompts 0, 1, 2
    lens[s] = np.array([5, 8, 4])[kind]
    subject = rng.integers(0, 57, size=n)
    mm = kind == 1
    ids[s[mm] + 1] = 10 + subject[mm]
    lens[s[mm] + 1] = 600 + 3 * subject[mm]
    ids[offsets[1:] - 1] = 1000 + np.arange(n)
    lens[offsets[1:] - 1] = np.where(kind == 0, rng.integers(20, 500, n), np.where(mm, 109, 121))
    out = np.where(
        kind == 0,
        np.clip(rng.lognormal(2.5, 1.2, n), 1, 500),
        np.where(mm, rng.integers(1, 4, n), rng.integers(4000, 40000, n)),
    ).astype(np.int64)
    return Trace(
        np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int32), ["synthetic"], offsets, ids, lens, out
    )


def load(n: int) -> tuple[Trace, str]:
    try:
        from blendsim.traces.mixer import make_preset
    except ImportError:
        return synthetic_trace(n), "synthetic"
    return make_preset("trace1", requests=n), "preset trace1"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--policies", default="fifo,dfs,balance,blend")
    args = ap.parse_args()
    t0 = time.perf_counter()
    trace, what = load(args.requests)
    print(
        f"trace: {what}, {len(trace)} requests, {len(trace.seg_ids)} segments "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    for policy in args.policies.split(","):
        plan = make_plan(trace, policy, "llama-3-8b", "a100-80g")
        s = plan.stats
        print(
            f"{policy:8s} plan {s['plan_s']:6.2f} s  "
            f"({s['plan_s'] / TARGET_S:.2f} of the {TARGET_S:.0f} s target)"
            f"  units {plan.num_units}  sharing kept {s['sharing_kept']:.4f}"
            f"  leaves split {s['leaf_split_fraction']:.4%}"
        )


if __name__ == "__main__":
    main()
