"""SimResult: the numbers of one simulated run, its per-step series, and the files it writes.

Throughput counts every prompt and output token, cached ones included, over the makespan (as the
paper does). ``sharing`` is the GEMM tokens saved by prefix-cache hits (first admissions; work
redone after preemption is counted apart, in ``recomputed_tokens``) over sum(p + d);
``optimal_sharing`` is the same ratio with an unbounded cache in DFS order; ``fraction_of_optimal``
is the practical optimum's time over the makespan. ``throughput_per_gpu_tok_s`` divides the
throughput by the GPUs of every replica, prefill and decode ones of a disaggregated layout alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.outputs import atomic_output, atomic_outputs, write_json
from blendsim.sim.simulation.record import COLOCATED, ROLES, STEP_COLUMNS

RESULT_KEYS = (
    "policy",
    "engine",
    "requests",
    "total_tokens",
    "makespan_s",
    "throughput_tok_s",
    "steps",
    "preemptions",
    "sharing",
    "optimal_sharing",
    "optimal_time_s",
    "fraction_of_optimal",
    "plan_s",
    "sim_s",
)
SERIES_COLUMNS = STEP_COLUMNS  # the per-step record (blendsim.sim.simulation.record)
CHROME_MAX_SLICES = 200_000  # per-step slices beyond this are merged so Perfetto opens the file quickly


@dataclass
class SimResult:
    """One policy's run. ``steps`` maps SERIES_COLUMNS to equal-length arrays (all replicas, the
    step record of :mod:`blendsim.sim.simulation.record`), ``chunks`` its prefill chunks (replica, step,
    position, tokens, context); ``admission`` holds the first admissions, replica by replica, each
    replica's in its admission order (what the executor replays): ``position``, ``side`` (0 fcfs, 1 left,
    2 right), ``replica``, ``step`` (the replica's step, numbered from 1 as in ``steps``, that could
    first schedule it: it was admitted after ``step - 1`` steps had run; non-decreasing within a
    replica), ``time`` (the simulated time then: that step's start) and ``cached_tokens`` (prompt tokens
    its prefix-cache hit skipped: whole blocks, never the last prompt token). The series' ``prefill_cap``
    is the policy's cap on that step's prefill tokens (blend's chunk pacing), -1 where the step could
    fill its token budget. A disaggregated run adds ``transfers``, its transfer record
    (:data:`blendsim.sim.simulation.disagg.TRANSFER_COLUMNS`); ``gpus`` counts every replica's GPUs."""

    policy: str
    engine: str
    requests: int
    total_tokens: int
    makespan_s: float
    steps_run: int
    preemptions: int
    sharing: float
    optimal_sharing: float
    optimal_time_s: float
    plan_s: float
    sim_s: float
    steps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    admission: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    chunks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    transfers: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    gpus: int = 1

    @property
    def throughput_tok_s(self) -> float:
        return self.total_tokens / self.makespan_s if self.makespan_s > 0 else 0.0

    @property
    def throughput_per_gpu_tok_s(self) -> float:
        """Throughput over the GPUs that ran it: replicas (prefill and decode ones alike) x TP."""
        return self.throughput_tok_s / self.gpus

    @property
    def layout(self) -> str:
        """``colocated``, or a disaggregated layout's name (``1P2D``)."""
        return str(self.extra.get("layout", "colocated"))

    @property
    def fraction_of_optimal(self) -> float:
        return self.optimal_time_s / self.makespan_s if self.makespan_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "engine": self.engine,
            "requests": self.requests,
            "total_tokens": self.total_tokens,
            "makespan_s": self.makespan_s,
            "throughput_tok_s": self.throughput_tok_s,
            "gpus": self.gpus,
            "throughput_per_gpu_tok_s": self.throughput_per_gpu_tok_s,
            "steps": self.steps_run,
            "preemptions": self.preemptions,
            "sharing": self.sharing,
            "optimal_sharing": self.optimal_sharing,
            "optimal_time_s": self.optimal_time_s,
            "fraction_of_optimal": self.fraction_of_optimal,
            "plan_s": self.plan_s,
            "sim_s": self.sim_s,
        }
        out.update(self.extra)
        return out

    def release_steps(self, replica: int | None = None) -> np.ndarray | None:
        """For a one-engine replay of ``replica`` (None: the run's only replica) in its
        ``admission["position"]`` order: the steps that had run when each request was first admitted
        (``step - 1``), so a real engine is handed each request no earlier than the simulator admitted
        it (``executor.pacing.Pacing.release_steps``). None without a ``step`` column, or for
        ``replica=None`` with several replicas."""
        steps = self.admission.get("step")
        mine = self._rows(self.admission, replica)
        if steps is None or mine is None:
            return None
        return np.asarray(steps[mine], dtype=np.int64) - 1

    def prefill_caps(self, replica: int | None = None) -> np.ndarray | None:
        """For a one-engine replay of ``replica`` (as :meth:`release_steps`): each of its steps'
        prefill cap (-1: none), so a real engine can run the same per-step prefill budgets
        (``executor.pacing.Pacing.prefill_caps``). None when none of its steps was capped."""
        caps = self.steps.get("prefill_cap")
        mine = self._rows(self.steps, replica)
        if caps is None or mine is None or not np.any(caps[mine] >= 0):
            return None
        return np.asarray(caps[mine], dtype=np.int64)

    @staticmethod
    def _rows(table: dict[str, np.ndarray], replica: int | None) -> np.ndarray | None:
        """Mask of ``replica``'s rows; all rows for None when there is one replica (None otherwise)."""
        rep = table.get("replica")
        if rep is None:
            return None
        if replica is None:
            return np.ones(len(rep), dtype=bool) if not len(rep) or np.all(rep == rep[0]) else None
        return np.asarray(rep == replica)

    # ------------------------------------------------------------------ files
    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``<policy>_<engine>.json`` (result), ``_steps.parquet``, ``_chunks.parquet``,
        ``_trace.json`` (Chrome trace) and ``_admission.parquet`` into the folder ``out_dir``
        (created if missing), and a disaggregated run's ``_transfers.parquet``, all or none; a disaggregated
        run's stem ends in its layout (``dfs_serial_1P2D``). Returns the paths."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        suffix = "" if self.layout == "colocated" else f"_{self.layout}"
        stem = d / f"{self.policy}_{self.engine}{suffix}"
        paths = [
            Path(f"{stem}.json"),
            Path(f"{stem}_steps.parquet"),
            Path(f"{stem}_trace.json"),
            Path(f"{stem}_admission.parquet"),
            Path(f"{stem}_chunks.parquet"),
        ]
        if self.transfers:
            paths.append(Path(f"{stem}_transfers.parquet"))
        with atomic_outputs(*paths) as tmp:  # the files appear together, or none
            write_json(tmp[0], self.to_dict())
            write_parquet(tmp[1], self.steps)
            write_json(tmp[2], chrome_trace(self), indent=None)
            write_parquet(tmp[3], self.admission)
            write_parquet(tmp[4], self.chunks)
            if self.transfers:
                write_parquet(tmp[5], self.transfers)
        return paths


def write_parquet(path: str | Path, columns: dict[str, np.ndarray]) -> None:
    """Equal-length columns as one Parquet file, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(np.asarray(v)) for k, v in columns.items()})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def chrome_trace(result: SimResult) -> dict[str, Any]:
    """Chrome trace-event JSON (Perfetto, chrome://tracing): one slice per step (consecutive steps
    merged into one slice when a run has more than CHROME_MAX_SLICES steps) on one track per
    replica, with counters for running requests, KV in use, and compute vs memory time."""
    s = result.steps
    events: list[dict[str, Any]] = [
        {
            "name": "process_name",
            "ph": "M",
            "pid": 0,
            "args": {"name": f"blendsim {result.policy} ({result.engine})"},
        }
    ]
    if not len(s.get("step", ())):
        return {"traceEvents": events, "displayTimeUnit": "ms"}
    replicas = np.asarray(s["replica"])
    roles = np.asarray(s["role"]) if "role" in s else np.zeros(len(replicas), dtype=np.int8)
    names = np.unique(replicas)
    per_replica = max(1, CHROME_MAX_SLICES // len(names))
    for r in names.tolist():
        idx = np.flatnonzero(replicas == r)
        role = int(roles[idx[0]])
        title = f"replica {r}" if role == COLOCATED else f"replica {r} ({ROLES[role]})"
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": r, "args": {"name": title}})
        group = max(1, -(-len(idx) // per_replica))
        starts = np.arange(0, len(idx), group)
        last = np.minimum(starts + group, len(idx)) - 1
        end = np.asarray(s["time"])[idx]
        begin = (end - np.asarray(s["step_s"])[idx])[starts] * 1e6
        dur = end[last] * 1e6 - begin
        sums = {
            k: np.add.reduceat(np.asarray(s[k])[idx], starts).tolist()
            for k in ("prefill_tokens", "decode_tokens", "compute_s", "memory_s")
        }
        first_step = np.asarray(s["step"])[idx][starts].tolist()
        last_step = np.asarray(s["step"])[idx][last].tolist()
        running = np.asarray(s["running"])[idx][last].tolist()
        kv = np.asarray(s["kv_used_tokens"])[idx][last].tolist()
        name = "step" if group == 1 else f"{group} steps"
        for j, (ts, du) in enumerate(zip(begin.tolist(), dur.tolist(), strict=True)):
            events.append(
                {
                    "name": name,
                    "ph": "X",
                    "pid": 0,
                    "tid": r,
                    "ts": ts,
                    "dur": du,
                    "args": {
                        "steps": f"{first_step[j]}-{last_step[j]}",
                        "prefill_tokens": int(sums["prefill_tokens"][j]),
                        "decode_tokens": int(sums["decode_tokens"][j]),
                        "compute_ms": round(sums["compute_s"][j] * 1e3, 4),
                        "memory_ms": round(sums["memory_s"][j] * 1e3, 4),
                    },
                }
            )
            events.append(
                {
                    "name": f"replica {r}",
                    "ph": "C",
                    "pid": 0,
                    "ts": ts,
                    "args": {"running": running[j], "kv_used_tokens": kv[j]},
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
