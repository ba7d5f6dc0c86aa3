"""auto: simulate every candidate order on the run the user asked for and keep the fastest.

Each candidate (by default :data:`~blendsim.sim.planning.policies.ORDERS`, every registered order;
under a disaggregated layout the one-sided ones, the only ones that can feed its shared prefill
stream) is planned with the run's estimation and seed and simulated on the run's profile, engine
configuration and replicas (:class:`RankingRun`). A simulation is a deterministic function of its
plan, so the chosen plan's simulated throughput is the best of the candidates simulated in full, by
construction; ties go to the earlier candidate.

Above :data:`SAMPLE_ABOVE` requests the candidates are first ranked on a uniform sample of
:data:`SAMPLE_REQUESTS` of them (seeded by the run's seed, in arrival order), and only the
:data:`FINALISTS` fastest there are simulated in full (one full run per finalist instead of one per
candidate). A sample keeps the mix and most of the prefix sharing but not the ratio of the work to
the longest request, so its ranking is not the full one's; how well its finalists hold the full
winner is measured in docs/simulator.md ("Choosing the order"). ``sample=None`` ranks everything in
full.

The winner's plan is returned renamed ``auto``; ``stats["auto"]`` records the ranking (each
candidate simulated in full, best first, the winner's margin over the runner-up and, when a sample
chose the finalists, ``sampled``: its size and every candidate's tok/s on it), which a simulation
result carries on as ``extra["auto"]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from blendsim.errors import UserError, unknown
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput
from blendsim.sim.simulation.config import EngineConfig

if TYPE_CHECKING:
    from blendsim.profiler.models import ModelSpec
    from blendsim.profiler.profile import Profile
    from blendsim.sim.simulation.layout import DisaggConfig
    from blendsim.sim.simulation.result import SimResult
    from blendsim.traces.trace import Trace


SAMPLE_ABOVE = 100_000  # requests above which the candidates are ranked on a sample first
SAMPLE_REQUESTS = 40_000  # the sample's size
FINALISTS = 3  # candidates the sample passes on to a full simulation


@dataclass(frozen=True)
class RankingRun:
    """The run ``auto`` ranks its candidates on: the one its plan is for."""

    profile: Profile
    config: EngineConfig = field(default_factory=EngineConfig)
    dp: int = 1
    disagg: DisaggConfig | None = None


@dataclass(frozen=True)
class Ranking:
    """The winner's plan (named ``auto``) and simulation, and every candidate's prediction."""

    plan: Plan
    result: SimResult
    summary: dict[str, Any]  # chosen, margin, candidates: [{policy, throughput_tok_s, makespan_s}]


def candidates_for(disagg: DisaggConfig | None) -> tuple[str, ...]:
    """The default candidates: every registered order; under ``disagg`` the one-sided ones."""
    from blendsim.sim.planning.policies import ONE_SIDED, ORDERS

    return ORDERS if disagg is None else ONE_SIDED


def check_candidates(names: Sequence[str], disagg: DisaggConfig | None) -> tuple[str, ...]:
    from blendsim.sim.planning.policies import ORDERS, check_disaggregable

    if not names:
        raise UserError("policy 'auto' needs at least one candidate order")
    for name in names:
        if name not in ORDERS:
            raise unknown("candidate order of auto", name, ORDERS)
        if disagg is not None:
            check_disaggregable(name)
    return tuple(names)


def rank(
    trace: Trace,
    model: ModelSpec,
    run: RankingRun,
    *,
    estimation: EstimationConfig | None = None,
    seed: int = 0,
    candidates: Sequence[str] | None = None,
    sample: int | None = SAMPLE_REQUESTS,
    progress: bool = False,
) -> Ranking:
    """Plan and simulate each candidate on ``run`` (module docstring); the fastest wins."""
    names = check_candidates(candidates_for(run.disagg) if candidates is None else candidates, run.disagg)
    started = time.perf_counter()
    sampled: dict[str, Any] | None = None
    if sample is not None and len(trace) > SAMPLE_ABOVE and len(names) > FINALISTS:
        sub = sample_of(trace, sample, seed)
        on_sample = _ranked(_simulate_each(sub, names, model, run, estimation, seed, progress))
        sampled = {"requests": len(sub), "candidates": on_sample}
        names = tuple(c["policy"] for c in on_sample[:FINALISTS])
    runs = _simulate_each(trace, names, model, run, estimation, seed, progress)
    best = runs[0]
    for plan, res in runs[1:]:
        if res.throughput_tok_s > best[1].throughput_tok_s:
            best = (plan, res)
    ordered = _ranked(runs)
    runner_up = ordered[1]["throughput_tok_s"] if len(ordered) > 1 else ordered[0]["throughput_tok_s"]
    rank_s = time.perf_counter() - started
    summary = {
        "chosen": best[0].policy,
        "margin": best[1].throughput_tok_s / runner_up if runner_up > 0 else 1.0,
        "candidates": ordered,
        "rank_s": rank_s,
        **({"sampled": sampled} if sampled else {}),
    }
    plan = replace(best[0], policy="auto", stats={**best[0].stats, "auto": summary})
    # choosing took every candidate's plan and simulation: that is auto's planning time
    result = replace(best[1], policy="auto", plan_s=rank_s, extra={**best[1].extra, "auto": summary})
    return Ranking(plan, result, summary)


def sample_of(trace: Trace, size: int, seed: int) -> Trace:
    """A uniform sample of ``size`` of ``trace``'s requests (all if fewer), seeded, in arrival order."""
    rng = np.random.default_rng(seed)
    return trace.subset(np.sort(rng.choice(len(trace), size=min(size, len(trace)), replace=False)))


def _simulate_each(
    trace: Trace,
    names: Sequence[str],
    model: ModelSpec,
    run: RankingRun,
    estimation: EstimationConfig | None,
    seed: int,
    progress: bool,
) -> list[tuple[Plan, SimResult]]:
    """Each candidate planned and simulated on ``trace`` under ``run``, in candidate order."""
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.simulation.capacity import bound_profile
    from blendsim.sim.simulation.run import simulate

    profile = bound_profile(run.profile, model)
    out = []
    for name in names:
        plan = make_plan(trace, name, model, profile.hardware, estimation=estimation, seed=seed)
        res = simulate(trace, plan, model, profile, run.config, run.dp, disagg=run.disagg, progress=progress)
        out.append((plan, res))
    return out


def _ranked(runs: list[tuple[Plan, SimResult]]) -> list[dict[str, Any]]:
    """Each run's policy, tok/s and makespan, fastest first (stable: ties keep candidate order)."""
    tried = [
        {"policy": plan.policy, "throughput_tok_s": res.throughput_tok_s, "makespan_s": res.makespan_s}
        for plan, res in runs
    ]
    return sorted(tried, key=lambda t: -t["throughput_tok_s"])


def ranking_line(summary: dict[str, Any]) -> str:
    """Why ``auto`` chose what it did (a ``Ranking.summary``): every candidate's simulated tok/s."""
    ranked = ", ".join(f"{c['policy']} {c['throughput_tok_s']:,.0f}" for c in summary["candidates"])
    line = (
        f"auto chose {summary['chosen']} ({summary['margin']:.3f}x the runner-up), simulated on this "
        f"run in {summary['rank_s']:.1f} s; tok/s by candidate: {ranked}"
    )
    if "sampled" in summary:
        sampled = summary["sampled"]
        pre = ", ".join(f"{c['policy']} {c['throughput_tok_s']:,.0f}" for c in sampled["candidates"])
        line += f" (finalists chosen on {sampled['requests']:,} sampled requests: {pre})"
    return line


def build(
    ctx: PlanningInput,
    *,
    run: RankingRun | None = None,
    candidates: Sequence[str] | None = None,
    sample: int | None = SAMPLE_REQUESTS,
) -> Plan:
    if run is None:
        raise UserError(
            "policy 'auto' ranks orders by simulating them: it needs the run to rank on "
            "(a profile and engine configuration)"
        )
    return rank(
        ctx.trace,
        ctx.model,
        run,
        estimation=ctx.estimation,
        seed=ctx.seed,
        candidates=candidates,
        sample=sample,
    ).plan
