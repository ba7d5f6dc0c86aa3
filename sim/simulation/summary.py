"""A run's result from its replicas: :func:`summarise` puts their records and counters together.

Throughput over the slowest replica's makespan, the practical optimum over N (:mod:`.optimum`),
where the time went (:mod:`.breakdown`), and the step, chunk and admission records of every
replica, after checking that every request finished once with exactly its output length.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

import numpy as np

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.profile import Profile
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.breakdown import role_breakdown, time_breakdown
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.optimum import block_saved_tokens, optimal_totals
from blendsim.sim.simulation.result import SimResult
from blendsim.sim.simulation.stats import EngineStats
from blendsim.traces.trace import Trace


class Ran(NamedTuple):
    """What a layout's run leaves: its replicas, the makespan, the result's layout fields and (a
    disaggregated run's) transfer record."""

    engines: list[Engine]
    makespan: float
    layout: dict[str, Any]
    transfers: dict[str, np.ndarray]


def summarise(
    trace: Trace,
    plan: Plan,
    profile: Profile,
    config: EngineConfig,
    capacity: int,
    ran: Ran,
    sim_s: float,
    plan_s: float | None,
) -> SimResult:
    """The run's numbers from its replicas' records and counters (module docstring)."""
    engines, makespan = ran.engines, ran.makespan
    replicas = len(engines)
    _check_complete(trace, engines)
    records = _records(engines, config.block_size)
    stats = EngineStats.total([e.stats for e in engines])
    total = int(trace.prompt_len.sum() + trace.output_len.sum())
    best = optimal_totals(trace)
    series = records["steps"]
    work = BatchShape(
        int(series["prefill_tokens"].sum()),
        stats.pairs_done,
        int(series["decode_tokens"].sum()),
        stats.kv_done,
        stats.chunks_done,
    )
    longest = int(trace.output_len.max()) if len(trace) else 0
    kv_tokens = capacity * config.block_size
    breakdown = time_breakdown(
        series,
        work,
        best,
        profile.steps,
        config.engine,
        config.token_budget,
        kv_tokens,
        longest,
        replicas,
        makespan,
    )
    if "disagg" in ran.layout:
        breakdown["roles"] = role_breakdown(series, [e.role for e in engines], makespan, profile.steps)
    bound = sum(block_saved_tokens(trace, e.record.admitted_positions, config.block_size) for e in engines)
    return SimResult(
        policy=plan.policy,
        engine=config.engine,
        requests=len(trace),
        total_tokens=total,
        makespan_s=makespan,
        steps_run=sum(e.step_index - 1 for e in engines),
        preemptions=stats.preemptions,
        sharing=stats.saved_tokens / total if total else 0.0,
        optimal_sharing=trace.sharing(),
        optimal_time_s=profile.optimal_time(best, config.engine) / replicas,
        plan_s=float(plan.stats.get("plan_s", 0.0) if plan_s is None else plan_s),
        sim_s=sim_s,
        steps=series,
        admission=records["admission"],
        chunks=records["chunks"],
        transfers=ran.transfers,
        gpus=replicas * profile.hardware.tp,
        extra={
            "dp": ran.layout["dp"],
            "tp": profile.hardware.tp,
            **ran.layout,
            "kv_capacity_tokens": kv_tokens,
            "recomputed_tokens": stats.recomputed_tokens,
            "outruns": stats.outruns,
            "prefill_completions": stats.prefill_completions,
            "block_sharing_bound": bound / total if total else 0.0,
            "admission_rule": config.admission,
            "right_admission": config.right_admission,
            "profile": profile.name,
            "estimation": _estimation(plan),
            "breakdown": breakdown,
            **({"auto": plan.stats["auto"]} if "auto" in plan.stats else {}),
        },
    )


def _estimation(plan: Plan) -> dict[str, Any]:
    """How the plan's lengths were estimated and how far off they were (what its stats record)."""
    keys = (*(f.name for f in fields(EstimationConfig)), "length_error")
    return {k: plan.stats[k] for k in keys if k in plan.stats}


def _check_complete(trace: Trace, engines: list[Engine]) -> None:
    """Each request finished once, on one replica, with exactly its output length (else a bug)."""
    done = np.full(len(trace), -1, dtype=np.int64)
    for e in engines:
        fin = np.asarray(e.requests.finished_len, dtype=np.int64)
        mask = fin >= 0
        if np.any(done[mask] >= 0):
            raise RuntimeError("a request finished on two replicas")
        done[mask] = fin[mask]
    if not np.array_equal(done, trace.output_len):
        bad = int(np.flatnonzero(done != trace.output_len)[0])
        raise RuntimeError(
            f"request {int(trace.request_id[bad])} finished with {done[bad]} of "
            f"{int(trace.output_len[bad])} tokens"
        )


def _records(engines: list[Engine], block_size: int) -> dict[str, dict[str, np.ndarray]]:
    """Every replica's step, chunk and admission records, replica after replica."""
    parts = [e.record.columns(r, block_size) for r, e in enumerate(engines)]
    return {
        kind: {col: np.concatenate([p[kind][col] for p in parts]) for col in parts[0][kind]}
        for kind in ("steps", "chunks", "admission")
    }
