"""Data parallelism: N independent replicas, each run to completion on its own clock.

Each replica is an :class:`Engine` with its own admission policy over its share of the requests;
the run ends when the last replica finishes (the makespan). How shares are made:

* baselines (``fifo``, ``dfs``, ``balance``): the policy's order is cut into N contiguous parts of
  (nearly) equal estimated tokens sum(p + d_hat); each replica runs its part in order, as if the
  ordered file were sharded. A DFS order thus gives the last replica the memory-heavy tail.
  ``dfs-tuned``'s long outputs (its plan's lead) are dealt across the replicas first, and each
  replica's prefill cap is its own (:func:`split_one_sided`).
* ``blend``: :func:`carve_shares` (blendserve.md §4.6, with the memory-heavy requests dealt so each
  share gets an equal part of the memory work *and* of the long-request critical path, and the
  compute-heavy work dealt in runs so the shares' predicted times, :mod:`.share_time`, are equal).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import first_seen_tokens
from blendsim.sim.simulation.admission import Admission
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.share_time import ShareTimeModel, equal_time_parts
from blendsim.traces.trace import Trace

PROGRESS_EVERY = 512  # steps between progress-bar updates


def split_contiguous(order: np.ndarray, weight: np.ndarray, parts: int) -> list[np.ndarray]:
    """Cut ``order`` into ``parts`` contiguous pieces of nearly equal total ``weight`` (by position)."""
    if parts == 1:
        return [order]
    cum = np.cumsum(weight[order].astype(np.float64))
    total = cum[-1] if len(cum) else 0.0
    cuts = np.searchsorted(cum, total * np.arange(1, parts) / parts, side="right")
    return np.split(order, cuts)


def split_one_sided(plan: Plan, trace: Trace, parts: int) -> list[tuple[np.ndarray, int | None]]:
    """Each replica's order and prefill cap under a one-sided plan of ``trace``.

    Without a lead, the order is cut into ``parts`` contiguous pieces of nearly equal estimated
    tokens sum(p + d_hat), each under the plan's cap (the ordered file sharded). With a lead
    (``Plan.lead``, dfs-tuned's long outputs), the lead requests are dealt longest-processing-time
    first by estimated KV reads ``d_hat (p + d_hat / 2)``, each to the replica with the least so
    far (so the long outputs, the critical path, are spread), and the rest is cut into contiguous
    pieces that top every replica up to 1/parts of the estimated GEMM tokens (the prompt tokens no
    request before it in plan order has, plus d_hat: cached prompts cost little); a replica runs its
    lead in plan order, then its piece, under :func:`_replica_cap`. Invariant: every position is in exactly
    one order."""
    order, d, prompt_len = plan.order, plan.est_output_len, trace.prompt_len
    weight = (prompt_len + d).astype(np.float64)
    if parts == 1 or plan.lead == 0:
        return [(part, plan.prefill_cap) for part in split_contiguous(order, weight, parts)]
    weight = np.zeros(len(order))  # the GEMM tokens each runs: its prefill in plan order, its decodes
    weight[order] = first_seen_tokens(trace, order) + d[order]
    lead, rest = order[: plan.lead], order[plan.lead :]
    reads = d[lead] * (prompt_len[lead] + d[lead] / 2)
    owner = np.zeros(len(lead), dtype=np.int64)
    load, tokens = np.zeros(parts), np.zeros(parts)
    for i in np.argsort(-reads, kind="stable"):
        k = int(np.argmin(load))
        owner[i] = k
        load[k] += reads[i]
        tokens[k] += weight[lead[i]]
    want = np.maximum(weight.sum() / parts - tokens, 0.0)
    if want.sum() > 0 and len(rest):
        cum = np.cumsum(weight[rest])
        pieces = np.split(
            rest, np.searchsorted(cum, cum[-1] * np.cumsum(want)[:-1] / want.sum(), side="right")
        )
    else:
        pieces = split_contiguous(rest, weight, parts)
    out: list[tuple[np.ndarray, int | None]] = []
    for k in range(parts):
        mine = np.concatenate([lead[owner == k], pieces[k]])
        out.append((mine, _replica_cap(plan, trace, mine)))
    return out


def _replica_cap(plan: Plan, trace: Trace, mine: np.ndarray) -> int | None:
    """A replica's prefill cap: the plan's spreads the trace's prefill work (prompt tokens the
    cache does not serve, :meth:`Trace.saved_tokens`) over its longest estimated output
    (dfs-tuned), so a replica's spreads its own prefill work over its own longest estimated output
    (at least 1 token). None when the plan has no cap."""
    cap = plan.prefill_cap
    if cap is None or not len(mine):
        return cap
    d, p = plan.est_output_len, trace.prompt_len
    mask = np.zeros(len(trace), dtype=bool)
    mask[mine] = True
    work = float(p[mine].sum() - trace.saved_tokens(mask)) / max(float(p.sum() - trace.saved_tokens()), 1.0)
    stretch = float(d.max()) / max(float(d[mine].max()), 1.0)
    return max(1, math.ceil(cap * work * stretch))


def carve_shares(
    plan: Plan, parts: int, time_model: ShareTimeModel | None = None, trace: Trace | None = None
) -> list[np.ndarray]:
    """Cut a two-sided plan into ``parts`` shares; returns each share's indices into ``plan.order``,
    increasing. Invariants: every index is in exactly one share; the memory work is balanced to
    within one request and the ``parts`` longest memory-heavy requests go to different shares; the
    compute-heavy work is split so that the shares' predicted times (``time_model``, the step bound
    of :mod:`.share_time`) are equal, or, without a model, so that every share holds 1/parts of
    the planned compute. With ``trace`` (the plan's), the cuts between the compute-heavy runs fall
    where neighbouring prompts share the fewest tokens (:func:`_deal_runs`).

    A replica's run is at least its longest request's output in steps (one token per step) and at
    least its work; blendserve.md §4.6's carving (a run from each end per share) balances the work
    but hands a whole run of the longest requests to one share, whose critical path is then far
    longer than the others'. So: the memory-heavy requests (units below the target density) are
    dealt longest-processing-time first, each to the share with the least memory work so far
    (the first ``parts`` go one per share); the compute-heavy requests are dealt as contiguous runs
    in plan order (:func:`_deal_runs`), each share's part of them being what tops it up to the
    common predicted finish: the share holding the longest request, whose steps cost their fixed
    part whatever they carry, takes less."""
    n = len(plan.order)
    if parts == 1 or n == 0:
        return [np.arange(n)]
    comp, mem = plan.request_costs()
    sizes = np.diff(plan.unit_bounds)
    heavy = (plan.unit_density < plan.target_density)[np.repeat(np.arange(plan.num_units), sizes)]
    est = plan.est_output_len[plan.order]
    owner = _deal_longest_first(np.flatnonzero(heavy), mem, parts)
    light = np.flatnonzero(~heavy)
    if not len(light):
        return [np.flatnonzero(owner == k) for k in range(parts)]
    if time_model is None:
        share_comp = np.bincount(owner[heavy], weights=comp[heavy], minlength=parts)
        want = np.maximum(comp.sum() / parts - share_comp, 0.0)
    else:
        fixed = [
            time_model.work(comp[m], mem[m], est[m]) for m in (heavy & (owner == k) for k in range(parts))
        ]
        want = equal_time_parts(time_model, fixed, time_model.work(comp[light], mem[light], est[light]))
    if want.sum() > 0:
        _deal_runs(
            light, comp, want, owner, None if trace is None else trace.common_prefix_tokens(plan.order[light])
        )
    return [np.flatnonzero(owner == k) for k in range(parts)]


def _deal_longest_first(heavy: np.ndarray, mem: np.ndarray, parts: int) -> np.ndarray:
    """Each request's share (0 where not in ``heavy``): the ``heavy`` ones dealt longest-processing-
    time first by memory work, each to the share with the least so far (the first ``parts`` to
    different shares; memory ends balanced to within one request). Dealing them by the time model
    instead (each to the share with the least predicted time) was measured worse: on the 40K presets
    it moved memory work off the replica holding the longest video, and the others then finished
    later (trace1 DP=2: 876 s against 832 s; trace2 DP=4: 772 s against 708 s): the step bound
    overlaps memory with compute perfectly, which a real step does not."""
    owner = np.zeros(len(mem), dtype=np.int64)
    share_mem = np.zeros(parts)
    for i in heavy[np.argsort(-mem[heavy], kind="stable")]:
        k = int(np.argmin(share_mem))
        owner[i] = k
        share_mem[k] += mem[i]
    return owner


RUNS_PER_SHARE = 64  # contiguous runs of the compute-heavy requests dealt to each share


def _deal_runs(
    light: np.ndarray, comp: np.ndarray, want: np.ndarray, owner: np.ndarray, cut_cost: np.ndarray | None
) -> None:
    """Cut ``light`` (plan order) into ``RUNS_PER_SHARE x parts`` contiguous runs of about equal
    compute and deal each, in order, to the share furthest behind its part ``want / want.sum()`` of
    the compute dealt so far: every share gets a slice of every stretch of the plan (its own small
    copy of the plan's density profile, whatever the true lengths along it), and each share's
    compute ends within about one run of its part. Prefix sharing is lost only at the cuts, and
    with ``cut_cost`` (by position in ``light``: the prompt tokens that request shares with the one
    before it) each cut moves, within half a run, to where the two sides share the fewest tokens."""
    parts = len(want)
    cum = np.cumsum(comp[light])
    runs = parts * RUNS_PER_SHARE
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, runs) / runs, side="right")
    if cut_cost is not None:
        cuts = _snap_cuts(cuts, cut_cost, max(1, len(light) // (2 * runs)))
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


def _snap_cuts(cuts: np.ndarray, cost: np.ndarray, reach: int) -> np.ndarray:
    """Each cut moved to the position within ``reach`` of it (and past the cut before it) of least
    ``cost``, the nearest on a tie; the cuts stay non-decreasing."""
    out = cuts.copy()
    floor = 1
    for i, c in enumerate(cuts):
        c = int(c)
        lo, hi = max(floor, c - reach), min(len(cost), c + reach + 1)
        if lo < hi and 0 < c < len(cost):
            window = np.arange(lo, hi)
            out[i] = window[np.lexsort((np.abs(window - c), cost[lo:hi]))[0]]
        floor = max(floor, int(out[i]))
    return out


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


def run_replica(engine: Engine, policy: Admission, tick: Callable[[int], None]) -> None:
    """Run one replica to completion: admit, then step, until its share is admitted and it is idle."""
    last = 0
    admit, step = policy.admit, engine.step
    while True:
        admit(engine)
        if engine.idle:
            if policy.exhausted:
                break
            raise RuntimeError(
                "a replica stalled: nothing running and the next request was not "
                "admitted (a request larger than the KV cache?)"
            )
        step()
        if engine.step_index % PROGRESS_EVERY == 0:
            tick(engine.stats.finished - last)
            last = engine.stats.finished
    tick(engine.stats.finished - last)


def run_replicas(pairs: list[tuple[Engine, Admission]], tick: Callable[[int], None] | None = None) -> float:
    """Run every (engine, policy) pair to completion; returns the makespan (the latest clock).

    Colocated replicas share nothing (each has its own share, KV and clock), so each runs on its
    own, one after the other; a shared event clock would only interleave them. (A disaggregated
    layout's replicas do interact, through dispatch and KV transfers: :mod:`.disagg` runs them on
    one simpy clock.)"""
    for engine, policy in pairs:
        run_replica(engine, policy, tick or (lambda _n: None))
    return max((engine.now for engine, _ in pairs), default=0.0)
