"""Entry points: ``simulate`` a plan on N replicas, or plan and simulate a policy (``simulate_policy``).

A run's result (:class:`~blendsim.sim.simulation.result.SimResult`) puts the replicas' records and
counters together: throughput over the slowest replica's makespan, the practical optimum over N
(:mod:`.optimum`), where the time went (:mod:`.breakdown`), and the step, chunk and admission
records of every replica.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any, NamedTuple

import numpy as np

from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.profile import Profile
from blendsim.profiler.specs import ModelSpec
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.admission import Admission, FcfsAdmission
from blendsim.sim.simulation.blend_admission import BlendAdmission
from blendsim.sim.simulation.breakdown import role_breakdown, time_breakdown
from blendsim.sim.simulation.capacity import bound_profile, check_requests_fit, kv_capacity_blocks
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.disagg import DisaggregatedRun
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.layout import DisaggConfig, kv_link, not_disaggregable
from blendsim.sim.simulation.optimum import block_saved_tokens, optimal_totals
from blendsim.sim.simulation.replicas import carve_shares, run_replicas, split_contiguous, sub_plan
from blendsim.sim.simulation.result import SimResult
from blendsim.sim.simulation.roles import DecodeEngine, PrefillEngine
from blendsim.sim.simulation.stats import EngineStats
from blendsim.traces.trace import Trace

__all__ = ["DisaggConfig", "EngineConfig", "SimResult", "simulate", "simulate_policy"]


def _admissions(
    trace: Trace, plan: Plan, dp: int, model: ModelSpec, profile: Profile, config: EngineConfig, capacity: int
) -> list[Admission]:
    """One admission policy per replica over its share (see :mod:`blendsim.sim.simulation.replicas`)."""
    if plan.two_sided:
        ridge = profile.steps.ridge_tokens()
        return [
            BlendAdmission(sub_plan(plan, idx), model, profile.hardware, config, capacity, ridge)
            for idx in carve_shares(plan, dp)
        ]
    weight = trace.prompt_len + plan.est_output_len
    return [FcfsAdmission(part, plan.prefill_cap) for part in split_contiguous(plan.order, weight, dp)]


def simulate(
    trace: Trace,
    plan: Plan,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig | None = None,
    dp: int = 1,
    *,
    disagg: DisaggConfig | None = None,
    progress: bool = False,
    plan_s: float | None = None,
) -> SimResult:
    """Run ``plan`` on ``dp`` replicas of the engine ``config`` describes (``dp >= 1``), or, with
    ``disagg``, on its prefill and decode replicas (:mod:`.disagg`; ``dp`` must then be 1)."""
    config = config or EngineConfig()
    if dp < 1:
        raise UserError(f"data-parallel replicas must be >= 1, got {dp}")
    if disagg is not None:
        if dp != 1:
            raise UserError(
                f"a disaggregated layout sets its own replicas; data parallelism must be 1, got {dp}"
            )
        if plan.two_sided:
            raise not_disaggregable(plan.policy)
    plan.validate(len(trace))
    profile = bound_profile(profile, model)
    capacity = kv_capacity_blocks(model, profile, config)
    check_requests_fit(trace, capacity, config.block_size)
    started = time.perf_counter()
    bar = _progress_bar(len(trace), progress)
    collecting = gc.isenabled()
    gc.disable()  # the run allocates millions of small acyclic objects; a cyclic collection finds none
    try:
        tick = bar.update if bar else None
        if disagg is None:
            ran = _colocated(trace, plan, dp, model, profile, config, capacity, tick)
        else:
            ran = _disaggregated(trace, plan, model, profile, config, capacity, disagg, tick)
    finally:
        if collecting:
            gc.enable()
        if bar:
            bar.close()
    return _result(trace, plan, profile, config, capacity, ran, time.perf_counter() - started, plan_s)


class _Ran(NamedTuple):
    """What a layout's run leaves: its replicas, the makespan, the result's layout fields and (a
    disaggregated run's) transfer record."""

    engines: list[Engine]
    makespan: float
    layout: dict[str, Any]
    transfers: dict[str, np.ndarray]


def _colocated(
    trace: Trace,
    plan: Plan,
    dp: int,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig,
    capacity: int,
    tick: Callable[[int], None] | None,
) -> _Ran:
    pairs = [
        (Engine(trace, plan.est_output_len, profile, config, capacity), policy)
        for policy in _admissions(trace, plan, dp, model, profile, config, capacity)
    ]
    makespan = run_replicas(pairs, tick)
    return _Ran([e for e, _ in pairs], makespan, {"dp": dp, "layout": "colocated"}, {})


def _disaggregated(
    trace: Trace,
    plan: Plan,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig,
    capacity: int,
    disagg: DisaggConfig,
    tick: Callable[[int], None] | None,
) -> _Ran:
    link = kv_link(profile.hardware, disagg)
    est = plan.est_output_len
    prefill = [PrefillEngine(trace, est, profile, config, capacity) for _ in range(disagg.prefill)]
    decode = [DecodeEngine(trace, est, profile, config, capacity) for _ in range(disagg.decode)]
    run = DisaggregatedRun(prefill, decode, plan.order, link, model.kv_bytes_per_token, tick)
    makespan = run.run()
    layout = {"dp": 1, "layout": disagg.label, "disagg": run.summary(makespan)}
    return _Ran([*prefill, *decode], makespan, layout, run.columns())


def _result(
    trace: Trace,
    plan: Plan,
    profile: Profile,
    config: EngineConfig,
    capacity: int,
    ran: _Ran,
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


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="simulate", leave=False, mininterval=0.5)


def simulate_policy(
    trace: Trace,
    policy: str,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig | None = None,
    dp: int = 1,
    seed: int = 0,
    *,
    disagg: DisaggConfig | None = None,
    estimation: EstimationConfig | None = None,
    progress: bool = False,
    **options: Any,
) -> SimResult:
    """Plan ``trace`` with ``policy`` (lengths estimated as ``estimation`` says; ``options`` go to
    the policy) and simulate it on ``config`` (on ``disagg``'s replicas when given)."""
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.planning.policies import TWO_SIDED

    if disagg is not None and policy in TWO_SIDED:
        raise not_disaggregable(policy)
    if policy == "auto":  # its ranking already simulated the winner: no second run
        from blendsim.sim.planning.policies.auto import RankingRun, rank

        candidates = options.pop("candidates", None)
        if options:
            raise UserError(f"policy 'auto' takes candidates, got: {', '.join(sorted(options))}")
        run = RankingRun(profile, config or EngineConfig(), dp, disagg)
        ranking = rank(
            trace, model, run, estimation=estimation, seed=seed, candidates=candidates, progress=progress
        )
        return ranking.result
    profile = bound_profile(profile, model)
    started = time.perf_counter()
    plan = make_plan(trace, policy, model, profile.hardware, estimation=estimation, seed=seed, **options)
    plan_s = time.perf_counter() - started
    return simulate(trace, plan, model, profile, config, dp, disagg=disagg, progress=progress, plan_s=plan_s)
