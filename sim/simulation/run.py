"""Entry points: ``simulate`` a plan on N replicas, or plan and simulate a policy (``simulate_policy``).

Each layout (colocated replicas, or a disaggregated prefill/decode split) runs its engines to a
:class:`~.summary.Ran`; :func:`~.summary.summarise` makes the
:class:`~blendsim.sim.simulation.result.SimResult` from it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from blendsim.errors import UserError
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.admission import Admission, FcfsAdmission
from blendsim.sim.simulation.blend_admission import BlendAdmission
from blendsim.sim.simulation.capacity import bound_profile, check_requests_fit, kv_capacity_blocks
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.disagg import DisaggregatedRun
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.layout import DisaggConfig, kv_link, not_disaggregable
from blendsim.sim.simulation.lpm_admission import LpmAdmission
from blendsim.sim.simulation.replicas import carve_shares, run_replicas, split_one_sided, sub_plan
from blendsim.sim.simulation.result import SimResult
from blendsim.sim.simulation.roles import DecodeEngine, PrefillEngine
from blendsim.sim.simulation.share_time import ShareTimeModel
from blendsim.sim.simulation.summary import Ran, summarise
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
            for idx in carve_shares(plan, dp, ShareTimeModel.of(profile, model, config, capacity), trace)
        ]
    kind = LpmAdmission if plan.admission == "lpm" else FcfsAdmission
    return [kind(part, cap) for part, cap in split_one_sided(plan, trace, dp)]


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
        if plan.two_sided or plan.admission != "fcfs":
            raise not_disaggregable(plan.policy, engine_side=not plan.two_sided)
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
    return summarise(trace, plan, profile, config, capacity, ran, time.perf_counter() - started, plan_s)


def _colocated(
    trace: Trace,
    plan: Plan,
    dp: int,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig,
    capacity: int,
    tick: Callable[[int], None] | None,
) -> Ran:
    pairs = [
        (Engine(trace, plan.est_output_len, profile, config, capacity), policy)
        for policy in _admissions(trace, plan, dp, model, profile, config, capacity)
    ]
    makespan = run_replicas(pairs, tick)
    return Ran([e for e, _ in pairs], makespan, {"dp": dp, "layout": "colocated"}, {})


def _disaggregated(
    trace: Trace,
    plan: Plan,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig,
    capacity: int,
    disagg: DisaggConfig,
    tick: Callable[[int], None] | None,
) -> Ran:
    link = kv_link(profile.hardware, disagg)
    est = plan.est_output_len
    prefill = [PrefillEngine(trace, est, profile, config, capacity) for _ in range(disagg.prefill)]
    decode = [DecodeEngine(trace, est, profile, config, capacity) for _ in range(disagg.decode)]
    run = DisaggregatedRun(prefill, decode, plan.order, link, model.kv_bytes_per_token, tick)
    makespan = run.run()
    layout = {"dp": 1, "layout": disagg.label, "disagg": run.summary(makespan)}
    return Ran([*prefill, *decode], makespan, layout, run.columns())


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
    from blendsim.sim.planning.policies import check_disaggregable

    if disagg is not None:
        check_disaggregable(policy)
    if policy == "auto":  # its ranking already simulated the winner: no second run
        from blendsim.sim.planning.policies.auto import RankingRun, rank

        choice = {k: options.pop(k) for k in ("candidates", "sample") if k in options}
        if options:
            raise UserError(f"policy 'auto' takes candidates and sample, got: {', '.join(sorted(options))}")
        run = RankingRun(profile, config or EngineConfig(), dp, disagg)
        ranking = rank(trace, model, run, estimation=estimation, seed=seed, progress=progress, **choice)
        return ranking.result
    profile = bound_profile(profile, model)
    started = time.perf_counter()
    plan = make_plan(trace, policy, model, profile.hardware, estimation=estimation, seed=seed, **options)
    plan_s = time.perf_counter() - started
    return simulate(trace, plan, model, profile, config, dp, disagg=disagg, progress=progress, plan_s=plan_s)
