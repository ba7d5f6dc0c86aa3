"""The simulator's golden results: presets at 4,000 requests, every policy, both engines, DP 1 and 2.

A refactor of the simulator must not move any result. :func:`digest` reduces a ``SimResult`` to what
is compared: every result field except wall times (``plan_s``, ``sim_s``), the ``extra`` fields
(breakdown included), and the per-step series and admission record as *digests*: an integer column
by the SHA-256 of its int64 bytes (exact), a float column by its length, sum, position-weighted sum,
minimum and maximum (relative 1e-9). :func:`mismatches` compares two digests under that rule.

Besides the grid, a few cases run on a tight KV cache (16-token blocks, 60,000 tokens) so that
eviction and preemption, which the default cache never reaches at this size, are covered too, and
blend runs once with each of its engine options off its default.

Regenerate the fixture (after a change that moves results on purpose, saying in the commit what
moved and why)::

    python tests/golden.py            # writes tests/data/golden_sim.json
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.sim.planning.policies import ORDERS

FIXTURE = Path(__file__).resolve().parent / "data" / "golden_sim.json"
REQUESTS = 4000
PRESETS = ("trace1", "trace2", "trace3", "trace4")
POLICIES = ORDERS  # every registered order (auto is their best: nothing of its own to pin)
ENGINES = ("overlap", "serial")
TIGHT = {"block_size": 16, "kv_capacity_override": 60_000}  # eviction and preemption
# blend's engine options off their defaults (trace2, overlap, DP 1), each alone
VARIANTS: dict[str, dict[str, Any]] = {
    "no_pacing": {"blend_pacing": False},
    "no_chunk_pacing": {"blend_chunk_pacing": False},
    "request_credit": {"blend_request_credit": True},
    "right_expected": {"right_admission": "expected"},
    "final": {"admission": "final"},
    "refresh_target": {"blend_refresh_target": True},
}
TIMINGS = ("plan_s", "sim_s")
RTOL = 1e-9


Case = tuple[str, str, str, int, str]  # preset, policy, engine, dp, variant ("" / "tight" / VARIANTS)


def cases() -> Iterator[Case]:
    """Every golden run."""
    for preset in PRESETS:
        for policy in POLICIES:
            for engine in ENGINES:
                for dp in (1, 2):
                    yield preset, policy, engine, dp, ""
    for preset in ("trace1", "trace4"):
        for policy in POLICIES:
            yield preset, policy, "overlap", 1, "tight"
    for variant in VARIANTS:
        yield "trace2", "blend", "overlap", 1, variant


def case_key(case: Case) -> str:
    preset, policy, engine, dp, variant = case
    return f"{preset}/{policy}/{engine}/dp{dp}" + (f"/{variant}" if variant else "")


def case_options(variant: str) -> dict[str, Any]:
    """EngineConfig fields of a variant."""
    return dict(TIGHT) if variant == "tight" else dict(VARIANTS.get(variant, {}))


def column_digest(values: np.ndarray) -> dict[str, Any]:
    a = np.asarray(values)
    if a.dtype.kind in "iub":
        return {"n": int(a.size), "sha256": hashlib.sha256(a.astype(np.int64).tobytes()).hexdigest()}
    f = a.astype(np.float64)
    w = np.arange(1, f.size + 1, dtype=np.float64) / max(f.size, 1)
    return {
        "n": int(f.size),
        "sum": float(f.sum()),
        "weighted": float((f * w).sum()),
        "min": float(f.min()) if f.size else 0.0,
        "max": float(f.max()) if f.size else 0.0,
    }


def digest(result: Any) -> dict[str, Any]:
    """What the golden test compares of one ``SimResult`` (module docstring)."""
    fields = {k: v for k, v in result.to_dict().items() if k not in TIMINGS}
    return {
        "fields": json.loads(json.dumps(fields, default=float)),
        "steps": {k: column_digest(v) for k, v in sorted(result.steps.items())},
        "admission": {k: column_digest(v) for k, v in sorted(result.admission.items())},
    }


def mismatches(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected``: ints and strings exactly, floats within RTOL.
    Keys present only in ``actual`` are new fields and not a mismatch."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a mapping, got {actual!r}"]
        out = []
        for k, v in expected.items():
            if k not in actual:
                out.append(f"{where}/{k}: missing")
            else:
                out.extend(mismatches(v, actual[k], f"{where}/{k}"))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for m in mismatches(e, a, f"{where}[{i}]")
        ]
    if isinstance(expected, float) or isinstance(actual, float):
        if expected is None or actual is None or isinstance(expected, (bool, str)):
            return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]
        e, a = float(expected), float(actual)
        if math.isclose(e, a, rel_tol=RTOL, abs_tol=1e-300) or (math.isnan(e) and math.isnan(a)):
            return []
        return [f"{where}: expected {e!r}, got {a!r} (relative {abs(a - e) / max(abs(e), 1e-300):.2e})"]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def run_cases() -> dict[str, Any]:
    """Digest every case with the code as it is now."""
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import resolve_profile
    from blendsim.sim.simulation.config import EngineConfig
    from blendsim.sim.simulation.run import simulate_policy
    from blendsim.traces.mixer import make_preset

    model = get_model("llama-3-8b")
    profile = resolve_profile("a100-80g", None, model, 1)
    traces = {name: make_preset(name, requests=REQUESTS, seed=0) for name in PRESETS}
    out = {}
    for case in cases():
        preset, policy, engine, dp, variant = case
        config = EngineConfig(engine=engine, **case_options(variant))
        result = simulate_policy(traces[preset], policy, model, profile, config, dp, 0)
        out[case_key(case)] = digest(result)
    return out


def main() -> int:
    data = run_cases()
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(data)} golden cases to {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
