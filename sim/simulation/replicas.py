"""Data parallelism: N replicas, one simpy process each, sharing one clock.

Each replica is an :class:`Engine` with its own admission policy over its share of the requests;
the run ends when the last replica finishes (the makespan). How shares are made:

* baselines (``fifo``, ``dfs``, ``balance``): the policy's order is cut into N contiguous parts of
  (nearly) equal estimated tokens sum(p + d_hat); each replica runs its part in order, as if the
  ordered file were sharded. A DFS order thus gives the last replica the memory-heavy tail.
* ``blend``: :func:`carve_shares` (blendserve.md §4.6, with the memory-heavy requests dealt so each
  share gets an equal part of the memory work *and* of the long-request critical path).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np
import simpy

from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.admission import Admission
from blendsim.sim.simulation.engine import Engine

PROGRESS_EVERY = 512  # steps between progress-bar updates


def split_contiguous(order: np.ndarray, weight: np.ndarray, parts: int) -> list[np.ndarray]:
    """Cut ``order`` into ``parts`` contiguous pieces of nearly equal total ``weight`` (by position)."""
    if parts == 1:
        return [order]
    cum = np.cumsum(weight[order].astype(np.float64))
    total = cum[-1] if len(cum) else 0.0
    cuts = np.searchsorted(cum, total * np.arange(1, parts) / parts, side="right")
    return np.split(order, cuts)


def carve_shares(plan: Plan, parts: int) -> list[np.ndarray]:
    """Cut a two-sided plan into ``parts`` shares; returns each share's indices into ``plan.order``,
    increasing. Invariants: every index is in exactly one share; each share holds about 1/parts of
    the compute and of the memory work, and the ``parts`` longest memory-heavy requests go to
    different shares.

    A replica's run is at least its longest request's output in steps (one token per step) and at
    least its work; blendserve.md §4.6's carving (a run from each end per share) balances the work
    but hands a whole run of the longest requests to one share, whose critical path is then far
    longer than the others'. So: the memory-heavy requests (units below the target density) are
    dealt longest-processing-time first, each to the share with the least memory work so far
    (the first ``parts`` go one per share, and memory ends balanced to within one request); the
    compute-heavy requests, in plan order, are cut into contiguous runs that top every share up
    to 1/parts of the total compute (contiguous, so prefix sharing is lost only at the cuts)."""
    n = len(plan.order)
    if parts == 1 or n == 0:
        return [np.arange(n)]
    comp, mem = plan.request_costs()
    sizes = np.diff(plan.unit_bounds)
    heavy = (plan.unit_density < plan.target_density)[np.repeat(np.arange(plan.num_units), sizes)]
    owner = np.zeros(n, dtype=np.int64)
    share_mem, share_comp = np.zeros(parts), np.zeros(parts)
    for i in np.flatnonzero(heavy)[np.argsort(-mem[heavy], kind="stable")]:
        k = int(np.argmin(share_mem))
        owner[i] = k
        share_mem[k] += mem[i]
        share_comp[k] += comp[i]
    light = np.flatnonzero(~heavy)
    want = np.maximum(comp.sum() / parts - share_comp, 0.0)
    if want.sum() > 0 and len(light):
        _deal_runs(light, comp, want, owner)
    return [np.flatnonzero(owner == k) for k in range(parts)]


RUNS_PER_SHARE = 64  # contiguous runs of the compute-heavy requests dealt to each share


def _deal_runs(light: np.ndarray, comp: np.ndarray, want: np.ndarray, owner: np.ndarray) -> None:
    """Cut ``light`` (plan order) into ``RUNS_PER_SHARE x parts`` contiguous runs of equal compute
    and deal each, in order, to the share furthest behind its part ``want / want.sum()`` of the
    compute dealt so far: every share gets a slice of every stretch of the plan (its own small copy
    of the plan's density profile, whatever the true lengths along it), prefix sharing is lost only
    at the runs' cuts, and each share's compute ends within one run of its part."""
    parts = len(want)
    cum = np.cumsum(comp[light])
    runs = parts * RUNS_PER_SHARE
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, runs) / runs, side="right")
    part = want / want.sum()
    got = np.zeros(parts)
    dealt = 0.0
    for run in np.split(light, cuts):
        if not len(run):
            continue
        work = float(comp[run].sum())
        dealt += work
        k = int(np.argmax(part * dealt - got))
        owner[run] = k
        got[k] += work


def sub_plan(plan: Plan, idx: np.ndarray) -> Plan:
    """The two-sided plan of the requests at ``idx`` (indices into ``plan.order``, increasing): a
    unit of the share is the share's members of one plan unit, with their part of its compute and
    memory (:meth:`Plan.request_costs`), the unit's mean prompt and its members' mean estimated output
    (the whole unit's mean, exactly, when the share holds all of it)."""
    sizes = np.diff(plan.unit_bounds)
    unit_of = np.repeat(np.arange(plan.num_units), sizes)[idx]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(unit_of) != 0) + 1)).astype(np.int64)
    bounds = np.concatenate((starts, [len(idx)])).astype(np.int64)
    units = unit_of[starts] if len(idx) else np.zeros(0, dtype=np.int64)
    if not len(idx):
        starts = np.zeros(0, dtype=np.int64)
    comp, mem = plan.request_costs()
    d = plan.est_output_len[plan.order].astype(np.float64)
    unit_mean_d = np.bincount(
        np.repeat(np.arange(plan.num_units), sizes), weights=d, minlength=plan.num_units
    ) / np.maximum(sizes, 1)
    if not len(idx):
        return Plan(
            plan.policy,
            plan.order[idx],
            bounds,
            comp[:0],
            mem[:0],
            plan.unit_prompt[:0],
            plan.unit_output[:0],
            plan.est_output_len,
            two_sided=True,
            target_density=plan.target_density,
            stats=dict(plan.stats),
            prompt_len=plan.prompt_len,
            estimate=plan.estimate,
        )
    share_mean_d = np.add.reduceat(d[idx], starts) / np.diff(bounds)
    scale = share_mean_d / np.where(unit_mean_d[units] > 0, unit_mean_d[units], 1.0)
    return Plan(
        plan.policy,
        plan.order[idx],
        bounds,
        np.add.reduceat(comp[idx], starts),
        np.add.reduceat(mem[idx], starts),
        plan.unit_prompt[units].copy(),
        plan.unit_output[units] * scale,
        plan.est_output_len,
        two_sided=True,
        target_density=plan.target_density,
        stats=dict(plan.stats),
        prompt_len=plan.prompt_len,
        estimate=plan.estimate,
    )


def _replica(
    env: simpy.Environment, engine: Engine, policy: Admission, tick: Callable[[int], None]
) -> Generator[simpy.Event, None, None]:
    last = 0
    while True:
        policy.admit(engine)
        if engine.idle:
            if policy.exhausted:
                break
            raise RuntimeError(
                "a replica stalled: nothing running and the next request was not "
                "admitted (a request larger than the KV cache?)"
            )
        dt = engine.step()
        yield env.timeout(dt)
        if engine.step_index % PROGRESS_EVERY == 0:
            tick(engine.stats.finished - last)
            last = engine.stats.finished
    tick(engine.stats.finished - last)


def run_replicas(pairs: list[tuple[Engine, Admission]], tick: Callable[[int], None] | None = None) -> float:
    """Run every (engine, policy) pair to completion on one simpy clock; returns the makespan."""
    env = simpy.Environment()
    for engine, policy in pairs:
        env.process(_replica(env, engine, policy, tick or (lambda _n: None)))
    env.run()
    return max((engine.now for engine, _ in pairs), default=0.0)
