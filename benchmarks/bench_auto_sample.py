"""Benchmark: does ``auto``'s sample pick the same order as a full ranking?

Above ``SAMPLE_ABOVE`` requests ``auto`` ranks its candidates on a uniform sample and simulates only
the ``FINALISTS`` fastest there in full (sim/planning/policies/auto.py). Per preset and engine
(A100 built-in, default estimation) this runs the full ranking (every candidate in full) and the
sample's, and prints: the full winner, whether it is among the sample's finalists (then auto's pick
equals the full ranking's, since the finalists run in full), Kendall's tau between the two rankings,
and the seconds each took. Exits 1 if a full winner was not a finalist. Simulated (deterministic);
at 400K about 2 minutes per row here.

    .venv/bin/python benchmarks/bench_auto_sample.py [--requests 400000] [--engines overlap,serial]
"""

from __future__ import annotations

import argparse
import time

from scipy.stats import kendalltau

from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.policies.auto import FINALISTS, SAMPLE_REQUESTS, RankingRun, rank, sample_of
from blendsim.sim.simulation.config import EngineConfig
from blendsim.traces.mixer import make_preset

PRESETS = ("trace1", "trace2", "trace3", "trace4")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--engines", default="overlap,serial")
    args = ap.parse_args()
    model = MODELS["llama-3-8b"]
    profile = builtin_profile("a100-80g").bind(model)
    missed = []
    print(f"{FINALISTS} finalists from a {SAMPLE_REQUESTS:,}-request sample; {args.requests:,} requests")
    print(
        f"{'trace':<7} {'engine':<8} {'full winner':<12} {'finalists':<30} {'held':>5} {'tau':>6} "
        f"{'full s':>7} {'sample s':>8}"
    )
    for engine in args.engines.split(","):
        run = RankingRun(profile, EngineConfig(engine=engine))
        for preset in PRESETS:
            trace = make_preset(preset, requests=args.requests)
            started = time.perf_counter()
            full = rank(trace, model, run, sample=None).summary["candidates"]
            full_s = time.perf_counter() - started
            started = time.perf_counter()
            pre = rank(sample_of(trace, SAMPLE_REQUESTS, 0), model, run, sample=None).summary["candidates"]
            sample_s = time.perf_counter() - started
            finalists = [c["policy"] for c in pre[:FINALISTS]]
            winner = full[0]["policy"]
            order = [c["policy"] for c in full]
            tau = kendalltau([order.index(c["policy"]) for c in pre], range(len(pre))).statistic
            held = winner in finalists
            print(
                f"{preset:<7} {engine:<8} {winner:<12} {','.join(finalists):<30} "
                f"{'yes' if held else 'NO':>5} {tau:>6.2f} {full_s:>7.0f} {sample_s:>8.0f}",
                flush=True,
            )
            if not held:
                missed.append(f"{preset} {engine}: full winner {winner} not among {finalists}")
    for m in missed:
        print(f"MISSED: {m}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
