"""What every policy receives and the helpers baselines share.

A policy is one module in this package with a ``build(ctx: PlanningInput, **options) -> Plan``
function. ``ctx.tree`` is the prefix tree priced with the *estimated* output lengths
(``ctx.estimate``); the policy may edit it (blend splits it), since every plan gets a fresh one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec
from blendsim.sim.planning.estimate import EstimationConfig, LengthEstimate
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.tree import ROOT, PrefixTree
from blendsim.traces.trace import Trace


@dataclass
class PlanningInput:
    trace: Trace
    model: ModelSpec
    gpu: HardwareSpec
    tree: PrefixTree
    estimate: LengthEstimate
    seed: int = 0
    estimation: EstimationConfig = field(default_factory=EstimationConfig)  # how ``estimate`` was made


def no_options(policy: str, options: dict[str, Any]) -> None:
    if options:
        raise UserError(f"policy {policy!r} takes no options, got: {', '.join(sorted(options))}")


def unbounded_cache_saved(trace: Trace, order: np.ndarray) -> int:
    """Prompt tokens served from an unbounded cache when requests run in ``order``.

    Walks the order: a segment occurrence is saved if the same segment id occurred earlier (the
    segment invariant makes an id stand for its whole prefix). With nothing ever evicted this is
    the same for every order (``Trace.saved_tokens()``); only splitting, which forces recomputation,
    lowers it, and that is accounted in the tree, not here.
    """
    return int(trace.prompt_len.sum() - first_seen_tokens(trace, order).sum())


def first_seen_tokens(trace: Trace, order: np.ndarray) -> np.ndarray:
    """int64[len(order)]: each request's prompt tokens that no request before it in ``order`` has,
    i.e. what it prefills when requests run in ``order`` on an unbounded cache."""
    counts = np.diff(trace.seg_offsets)[order]
    starts = trace.seg_offsets[order]
    gather = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(
        counts.sum()
    )
    ids, lens = trace.seg_ids[gather], trace.seg_lens[gather]
    _, first = np.unique(ids, return_index=True)
    owner = np.repeat(np.arange(len(order)), counts)
    return np.bincount(owner[first], weights=lens[first], minlength=len(order)).astype(np.int64)


def per_request_plan(policy: str, ctx: PlanningInput, order: np.ndarray) -> Plan:
    """A one-sided plan with one request per unit (the baselines' granularity)."""
    tree = ctx.tree
    order = np.asarray(order, dtype=np.int64)
    p = tree.prefix_len[tree.leaf_offset :][order].astype(np.float64)
    d = tree.leaf_d[order]
    optimal = ctx.trace.saved_tokens()
    saved = unbounded_cache_saved(ctx.trace, order)
    return Plan(
        policy=policy,
        order=order,
        unit_bounds=np.arange(len(order) + 1, dtype=np.int64),
        unit_comp=tree.token_comp * (p + d),
        unit_mem=tree.leaf_mem[order].copy(),
        unit_prompt=p,
        unit_output=d.copy(),
        est_output_len=ctx.estimate.lengths,
        two_sided=False,
        target_density=float(tree.density()[ROOT]),
        prompt_len=ctx.trace.prompt_len,
        estimate=ctx.estimate,
        stats={
            "leaves_split": 0,
            "leaf_split_fraction": 0.0,
            "saved_tokens": saved,
            "optimal_saved_tokens": optimal,
            "sharing_kept": saved / optimal if optimal else 1.0,
        },
    )
