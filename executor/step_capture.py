"""The exact ``BatchShape`` of every simulated step, taken without touching the simulator.

The simulator's engine (``blendsim.sim.simulation.engine.Engine.step``) costs each step with one call
``profile.step_time(BatchShape(...), engine)``. :class:`CapturingProfile` is a ``Profile`` (a frozen
dataclass subclass, so ``isinstance``, ``bind``, ``hardware``, ``steps``, ``optimal_time`` all behave
as before) whose ``step_time`` delegates to the real model and appends the shape and its predicted
``StepTime`` to a shared log. ``dataclasses.replace`` (used by ``Profile.bind``) copies the log field,
so a re-bound profile keeps logging into the same list.

With ``dp`` replicas the simulator interleaves the replicas' steps on one simpy clock, so the log is
in call order, not replica order. :func:`align` assigns each logged call to the replica whose next
series row it is: the row's prefill tokens, decode tokens and step time must equal the call's,
exactly (the same floats), and among several matching replicas the one whose step starts earliest
wins (simpy resumes processes in time order). A mismatch is an error, never a silent guess.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blendsim.profiler.cost import BatchShape, StepTime
from blendsim.profiler.profile import Profile
from blendsim.profiler.specs import ModelSpec
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.result import SimResult
from blendsim.traces.trace import Trace

SHAPE_COLUMNS = (
    "replica",
    "step",
    "prefill_tokens",
    "prefill_attn_pairs",
    "decode_seqs",
    "decode_kv_tokens",
    "prefill_seqs",
    "pred_compute_s",
    "pred_memory_s",
    "pred_overhead_s",
    "pred_step_s",
    "pred_gemm_s",
    "pred_lm_head_s",
    "pred_prefill_attn_s",
    "pred_decode_attn_s",
)


@dataclass
class StepLog:
    """Calls to ``step_time`` in call order: (shape, engine, predicted time)."""

    calls: list[tuple[BatchShape, str, StepTime]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls)


@dataclass(frozen=True)
class CapturingProfile(Profile):
    """A ``Profile`` that logs every ``step_time`` call (see the module docstring)."""

    log: StepLog = field(default_factory=StepLog, compare=False, repr=False)

    @classmethod
    def wrap(cls, profile: Profile, log: StepLog | None = None) -> CapturingProfile:
        """``profile`` (bound or not) with logging; every field is copied, nothing is re-fitted."""
        kwargs = {f.name: getattr(profile, f.name) for f in dataclasses.fields(Profile) if f.init}
        return cls(**kwargs, log=log if log is not None else StepLog())

    def step_time(self, shape: BatchShape, engine: str = "overlap") -> StepTime:
        st = super().step_time(shape, engine)
        self.log.calls.append((shape, engine, st))
        return st


@dataclass
class CapturedSteps:
    """Per-step shapes aligned with a ``SimResult.steps`` series (same row order), plus the
    predicted time of each operator. ``columns`` maps :data:`SHAPE_COLUMNS` to equal-length arrays."""

    columns: dict[str, np.ndarray]
    engine: str

    def __len__(self) -> int:
        return len(self.columns["step"])

    def shape(self, row: int) -> BatchShape:
        c = self.columns
        return BatchShape(
            int(c["prefill_tokens"][row]),
            float(c["prefill_attn_pairs"][row]),
            int(c["decode_seqs"][row]),
            int(c["decode_kv_tokens"][row]),
            int(c["prefill_seqs"][row]),
        )

    def rows_of(self, replica: int) -> np.ndarray:
        return np.flatnonzero(self.columns["replica"] == replica)

    @property
    def replicas(self) -> list[int]:
        return [int(r) for r in np.unique(self.columns["replica"])]


def align(log: StepLog, series: dict[str, np.ndarray]) -> np.ndarray:
    """For each series row, the index of the logged call that produced it (module docstring)."""
    replica = np.asarray(series["replica"])
    n = len(replica)
    if len(log) != n:
        raise RuntimeError(f"captured {len(log)} step_time calls but the simulation recorded {n} steps")
    rows_by_rep = {int(r): np.flatnonzero(replica == r) for r in np.unique(replica)}
    cursor = dict.fromkeys(rows_by_rep, 0)
    start = np.asarray(series["time"]) - np.asarray(series["step_s"])
    pre, dec, dur = (np.asarray(series[k]) for k in ("prefill_tokens", "decode_tokens", "step_s"))
    call_of_row = np.full(n, -1, dtype=np.int64)
    for i, (shape, _engine, st) in enumerate(log.calls):
        best = None
        for r, rows in rows_by_rep.items():
            k = cursor[r]
            if k >= len(rows):
                continue
            row = rows[k]
            same = (
                pre[row] == shape.prefill_tokens and dec[row] == shape.decode_seqs and dur[row] == st.total_s
            )
            if same and (best is None or start[row] < start[best[1]]):
                best = (r, row)
        if best is None:
            raise RuntimeError(f"step_time call {i} matches no replica's next simulated step")
        call_of_row[best[1]] = i
        cursor[best[0]] += 1
    return call_of_row


def captured_columns(log: StepLog, series: dict[str, np.ndarray], profile: Profile) -> CapturedSteps:
    """Build :class:`CapturedSteps` from a log, the series it produced and the (bound) profile."""
    calls = align(log, series)
    sm = profile.steps
    cols: dict[str, list[Any]] = {k: [] for k in SHAPE_COLUMNS}
    engines = set()
    for row, i in enumerate(calls):
        shape, engine, st = log.calls[int(i)]
        engines.add(engine)
        s = shape.decode_seqs + shape.prefill_seqs
        n = shape.prefill_tokens + shape.decode_seqs
        values = (
            int(series["replica"][row]),
            int(series["step"][row]),
            shape.prefill_tokens,
            shape.prefill_attn_pairs,
            shape.decode_seqs,
            shape.decode_kv_tokens,
            shape.prefill_seqs,
            st.compute_s,
            st.memory_s,
            st.overhead_s,
            st.total_s,
            sm.gemm_time(n),
            sm.lm_head_time(s),
            sm.prefill_attn_time(shape.prefill_attn_pairs, shape.prefill_tokens, shape.prefill_seqs),
            sm.decode_attn_time(shape.decode_kv_tokens, shape.prefill_tokens),
        )
        for k, v in zip(SHAPE_COLUMNS, values, strict=True):
            cols[k].append(v)
    out = {
        k: np.asarray(v, dtype=np.float64 if k.startswith("pred") or k == "prefill_attn_pairs" else np.int64)
        for k, v in cols.items()
    }
    return CapturedSteps(out, engines.pop() if len(engines) == 1 else "mixed")


def simulate_captured(
    trace: Trace,
    plan: Plan,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig | None = None,
    dp: int = 1,
) -> tuple[SimResult, CapturedSteps]:
    """``blendsim.sim.simulation.run.simulate`` with a capturing profile: the result (identical to
    an uncaptured run) and every step's exact shape, aligned with ``result.steps``."""
    from blendsim.sim.simulation.run import bound_profile, simulate

    bound = bound_profile(profile, model)
    capturing = CapturingProfile.wrap(bound)
    result = simulate(trace, plan, model, capturing, config, dp)
    return result, captured_columns(capturing.log, result.steps, bound)
