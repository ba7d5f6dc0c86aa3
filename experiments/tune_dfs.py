"""The search that fixed ``dfs-tuned``'s knobs (:mod:`blendsim.sim.planning.policies.dfs_tuned`).

Every (long-output threshold, prefill span) pair of a small grid is simulated on *tuning* traces (the
four presets at trace seeds 101 and 102) and scored by the geometric mean of its throughput over
plain DFS's; the best pair is then checked on *held-out* traces (seeds 201 and 202), which the
search never saw. Overlap engine, A100 built-in, Llama-3-8B, the default estimation (sampled at 1 %,
video lengths exact). Run::

    python -m blendsim.experiments.tune_dfs [--requests 10000] [--check-requests 40000]

It prints the grid, the chosen pair and the held-out ratios (simulated, hence deterministic).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from typing import Any

from blendsim.profiler.models import get_model
from blendsim.profiler.profile import resolve_profile
from blendsim.sim.simulation.run import simulate_policy
from blendsim.traces.mixer import make_preset
from blendsim.traces.trace import Trace

PRESETS = ("trace1", "trace2", "trace3", "trace4")
TUNING_SEEDS = (101, 102)
HELD_OUT_SEEDS = (201, 202)
LONG_OUTPUTS: tuple[int | None, ...] = (None, 512, 2048)
SPANS: tuple[float | None, ...] = (None, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def _traces(seeds: Sequence[int], requests: int) -> dict[str, Trace]:
    return {f"{p}/s{s}": make_preset(p, requests=requests, seed=s) for p in PRESETS for s in seeds}


MODEL = get_model("llama-3-8b")
PROFILE = resolve_profile("a100-80g", None, MODEL)


def _throughput(trace: Trace, policy: str, **options: Any) -> float:
    return simulate_policy(trace, policy, MODEL, PROFILE, **options).throughput_tok_s


def _ratios(
    traces: dict[str, Trace], dfs: dict[str, float], long_output: int | None, span: float | None
) -> dict[str, float]:
    """dfs-tuned's throughput with these knobs over plain DFS's (``dfs``), per trace."""
    knobs = {"long_output": long_output, "span": span}
    return {name: _throughput(t, "dfs-tuned", **knobs) / dfs[name] for name, t in traces.items()}


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10_000, help="requests per trace (default: 10000)")
    ap.add_argument(
        "--check-requests", type=int, default=None, help="requests per held-out trace (default: --requests)"
    )
    args = ap.parse_args(argv)
    tuning = _traces(TUNING_SEEDS, args.requests)
    tuning_dfs = {name: _throughput(t, "dfs") for name, t in tuning.items()}
    scores = {}
    for long_output, span in itertools.product(LONG_OUTPUTS, SPANS):
        ratios = _ratios(tuning, tuning_dfs, long_output, span)
        scores[(long_output, span)] = _geomean(list(ratios.values()))
        worst = min(ratios.values())
        knobs = f"long_output={long_output} span={span}"
        print(f"{knobs}: geomean {scores[(long_output, span)]:.4f}, worst {worst:.4f}", flush=True)
    best = max(scores, key=lambda k: scores[k])
    print(f"chosen: long_output={best[0]} span={best[1]} (tuning geomean {scores[best]:.4f})")
    held_out = _traces(HELD_OUT_SEEDS, args.check_requests or args.requests)
    held = _ratios(held_out, {name: _throughput(t, "dfs") for name, t in held_out.items()}, *best)
    for name, ratio in held.items():
        print(f"held out {name}: dfs-tuned / dfs = {ratio:.4f}")
    print(f"held out geomean {_geomean(list(held.values())):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
