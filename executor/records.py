"""What an execution measured: per-step records and the run's result, in the simulator's schema.

``ExecResult.to_dict`` has the keys of :data:`blendsim.sim.simulation.result.RESULT_KEYS` (``sim_s`` is
the wall time of the measured run, ``optimal_time_s`` and ``fraction_of_optimal`` are null because they
need a profile; the comparison fills them) plus ``backend``, ``device`` and the measured extras.
``ExecResult.steps`` maps :data:`STEP_COLUMNS` to equal-length arrays; its first columns are the
simulator's ``SERIES_COLUMNS`` (``compute_s``, ``memory_s`` and ``overhead_s`` are NaN: a real engine
does not split its time; ``prefill_cap`` is the cap the replay applied), followed by each step's exact
composition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.outputs import atomic_outputs, write_json
from blendsim.sim.simulation.record import COLOCATED
from blendsim.sim.simulation.result import write_parquet

STEP_COLUMNS = (
    "replica",
    "role",
    "step",
    "time",
    "prefill_tokens",
    "decode_tokens",
    "running",
    "kv_used_tokens",
    "compute_s",
    "memory_s",
    "step_s",
    "prefill_cap",
    # exact composition (BatchShape fields) and bookkeeping
    "prefill_seqs",
    "prefill_attn_pairs",
    "decode_kv_tokens",
    "overhead_s",
    "cached_tokens",
    "admitted",
    "finished",
    "preempted",
    "waiting",
)


@dataclass
class StepRecord:
    """One engine step: its composition (as :class:`blendsim.profiler.cost.BatchShape` counts it)
    and its wall time. ``time`` is the step's end, seconds since the run's first step started."""

    step: int
    time: float
    step_s: float
    prefill_tokens: int
    prefill_seqs: int
    prefill_attn_pairs: float
    decode_seqs: int
    decode_kv_tokens: int
    running: int
    kv_used_tokens: int
    cached_tokens: int  # prompt tokens served by the prefix cache to requests first scheduled now
    admitted: int
    finished: int
    preempted: int
    waiting: int
    prefill_cap: int = -1  # the replayed plan's cap on this step's prefill tokens (-1: none)

    def as_row(self, replica: int = 0) -> tuple[float, ...]:
        return (
            replica,
            COLOCATED,
            self.step,
            self.time,
            self.prefill_tokens,
            self.decode_seqs,
            self.running,
            self.kv_used_tokens,
            float("nan"),
            float("nan"),
            self.step_s,
            self.prefill_cap,
            self.prefill_seqs,
            self.prefill_attn_pairs,
            self.decode_kv_tokens,
            float("nan"),  # overhead_s: a real engine's step is not split into model terms
            self.cached_tokens,
            self.admitted,
            self.finished,
            self.preempted,
            self.waiting,
        )


def steps_to_columns(records: list[StepRecord], replica: int = 0) -> dict[str, np.ndarray]:
    rows = [r.as_row(replica) for r in records]
    arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(STEP_COLUMNS))
    out = {}
    for j, name in enumerate(STEP_COLUMNS):
        col = arr[:, j]
        floats = name in ("time", "compute_s", "memory_s", "step_s", "prefill_attn_pairs", "overhead_s")
        out[name] = col if floats else col.astype(np.int64)
    return out


@dataclass(frozen=True)
class MeasuredRun:
    """What a real engine measured for one policy's run, as its result file holds it
    (``ExecResult.to_dict``, or the merge of a data-parallel run's replicas): the typed fields the
    comparison reads and everything else in ``extra``."""

    policy: str
    backend: str
    engine: str
    device: str
    total_tokens: int
    makespan_s: float
    steps: int
    preemptions: int
    sharing: float
    completed: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput_tok_s(self) -> float:
        return self.total_tokens / self.makespan_s if self.makespan_s > 0 else 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeasuredRun:
        typed = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            policy=str(d["policy"]),
            backend=str(d.get("backend", "vllm")),
            engine=str(d.get("engine", "")),
            device=str(d.get("device", "")),
            total_tokens=int(d["total_tokens"]),
            makespan_s=float(d["makespan_s"]),
            steps=int(d["steps"]),
            preemptions=int(d.get("preemptions", 0)),
            sharing=float(d.get("sharing", 0.0)),
            completed=bool(d.get("completed", True)),
            extra={k: v for k, v in d.items() if k not in typed},
        )


@dataclass
class ExecResult:
    """A measured run of one policy's admission order. ``completed`` is True when every request
    finished with exactly its output length (``wrong_lengths`` lists those that did not)."""

    policy: str
    backend: str
    device: str
    engine: str
    requests: int
    finished_requests: int
    total_tokens: int  # sum(p + d) of the finished requests
    makespan_s: float
    steps: list[StepRecord]
    preemptions: int
    cached_tokens: int  # prompt tokens served by the prefix cache, first schedules only
    optimal_sharing: float  # the trace's sharing with an unbounded cache (Trace.sharing)
    block_sharing_bound: float  # the same at the engine's block granularity, in this order
    engine_start_s: float
    wall_s: float
    interrupted: bool = False
    wrong_lengths: list[int] = field(default_factory=list)
    admitted_order: list[int] = field(default_factory=list)  # positions, as vLLM first scheduled them
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput_tok_s(self) -> float:
        return self.total_tokens / self.makespan_s if self.makespan_s > 0 else 0.0

    @property
    def completed(self) -> bool:
        return self.finished_requests == self.requests and not self.wrong_lengths

    def to_dict(self) -> dict[str, Any]:
        denom = self.total_tokens if self.total_tokens else 1
        return {
            "policy": self.policy,
            "engine": self.engine,
            "requests": self.requests,
            "total_tokens": self.total_tokens,
            "makespan_s": self.makespan_s,
            "throughput_tok_s": self.throughput_tok_s,
            "steps": len(self.steps),
            "preemptions": self.preemptions,
            "sharing": self.cached_tokens / denom,
            "optimal_sharing": self.optimal_sharing,
            "optimal_time_s": None,
            "fraction_of_optimal": None,
            "plan_s": 0.0,
            "sim_s": self.wall_s,
            "backend": self.backend,
            "device": self.device,
            "finished_requests": self.finished_requests,
            "completed": self.completed,
            "interrupted": self.interrupted,
            "wrong_lengths": self.wrong_lengths[:20],
            "cached_tokens": self.cached_tokens,
            "block_sharing_bound": self.block_sharing_bound,
            "engine_start_s": self.engine_start_s,
            "step_time_sum_s": float(sum(r.step_s for r in self.steps)),
            "config": self.config,
            "admitted_order": self.admitted_order,
        }

    def step_columns(self) -> dict[str, np.ndarray]:
        return steps_to_columns(self.steps)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``<policy>_<backend>.json`` and ``<policy>_<backend>_steps.parquet`` into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        stem = d / f"{self.policy}_{self.backend}"
        paths = [Path(f"{stem}.json"), Path(f"{stem}_steps.parquet")]
        with atomic_outputs(*paths) as tmp:  # both files, or neither
            write_json(tmp[0], self.to_dict())
            write_parquet(tmp[1], self.step_columns())
        return paths
