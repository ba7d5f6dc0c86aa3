"""dfs-tuned: DFS with long outputs first and the prefill spread over them, its knobs fixed by a search.

The order is :mod:`.dfs`'s with every request whose *estimated* output is at least
:data:`LONG_OUTPUT` tokens moved to the front (stable: DFS order within each group), so the long
decodes start at once and the rest of the run's prefill runs beside them instead of trailing behind
them. Each step then runs at most ``Plan.prefill_cap`` prefill tokens: :data:`SPAN` times the
trace's prefill work (prompt tokens not served from the prefix cache) over the longest estimated
output, so the prefill lasts about as many steps as the longest decode (a fixed cap would not carry
over from one trace size to another: the prefill grows with the requests, the longest decode does
not). Under a disaggregated layout the order holds and the cap does not apply (its prefill replicas
run no decodes). Under data parallelism the long outputs (``Plan.lead``) are dealt across the
replicas and each replica's cap spreads its own prefill over its own longest output
(:func:`blendsim.sim.simulation.replicas.split_one_sided`).

Both knobs were chosen by ``python -m blendsim.experiments.tune_dfs`` on tuning traces (the four
presets at trace seeds 101 and 102, 10K requests, overlap engine, A100 built-in) and checked on
held-out seeds (201, 202) and at 40K requests; the numbers are in docs/simulator.md. Never tuned on
a reported trace.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, per_request_plan

LONG_OUTPUT = 512  # estimated output tokens from which a request goes first
SPAN = 1.0  # the prefill cap spreads SPAN x the prefill work over the longest estimated output


def build(ctx: PlanningInput, **options: Any) -> Plan:
    """``options`` (``long_output``, ``span``; None turns a knob off) are for the search."""
    long_output = options.pop("long_output", LONG_OUTPUT)
    span = options.pop("span", SPAN)
    if options:
        raise UserError(f"policy 'dfs-tuned' takes long_output and span, got: {', '.join(sorted(options))}")
    order = ctx.tree.dfs_order(by_density=False)
    lead = 0
    if long_output is not None:
        first = ctx.estimate.lengths[order] >= long_output
        order = np.concatenate([order[first], order[~first]])
        lead = int(first.sum())
    plan = per_request_plan("dfs-tuned", ctx, order)
    plan.lead = lead
    plan.prefill_cap = None if span is None else prefill_cap(ctx, span)
    plan.stats.update(long_output=long_output, span=span, prefill_cap=plan.prefill_cap)
    return plan


def prefill_cap(ctx: PlanningInput, span: float) -> int:
    """Prefill tokens per step that spread ``span`` x the prefill work over the longest estimated
    output (at least 1)."""
    trace = ctx.trace
    work = float(trace.prompt_len.sum() - trace.saved_tokens())
    longest = int(ctx.estimate.lengths.max()) if len(trace) else 1
    return max(1, math.ceil(span * work / max(longest, 1)))
