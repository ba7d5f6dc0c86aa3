"""blend: BlendServe's sorted, split and merged resource-aware tree as a two-sided Plan.

Units are the merged subtrees of :func:`blendsim.sim.planning.transform.merge`, left (compute-heavy) to
right (memory-heavy); ``target_density`` is ρ(root) after splitting. Options are the fields of
:class:`blendsim.sim.planning.transform.TransformConfig` (keep_sharing, budget_tokens, split, merge,
max_rounds).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from blendsim.errors import UserError
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput
from blendsim.sim.planning.transform import TransformConfig, merge, split
from blendsim.sim.planning.tree import ROOT


def build(ctx: PlanningInput, **options: Any) -> Plan:
    valid = {f.name for f in dataclasses.fields(TransformConfig)}
    bad = sorted(set(options) - valid)
    if bad:
        raise UserError(f"unknown blend option(s) {', '.join(bad)}; valid: {', '.join(sorted(valid))}")
    config = TransformConfig(**options)
    tree = ctx.tree
    optimal = ctx.trace.saved_tokens()
    report = split(tree, config)
    target = float(tree.density()[ROOT])
    units = merge(tree, target, enabled=config.merge)
    saved = tree.saved_tokens()
    n = len(ctx.trace)
    return Plan(
        policy="blend",
        order=units.order,
        unit_bounds=units.bounds,
        unit_comp=units.comp,
        unit_mem=units.mem,
        unit_prompt=units.prompt,
        unit_output=units.output,
        est_output_len=ctx.estimate.lengths,
        two_sided=True,
        target_density=target,
        prompt_len=ctx.trace.prompt_len,
        estimate=ctx.estimate,
        stats={
            "leaves_split": report.leaves_split,
            "leaf_split_fraction": report.leaves_split / n if n else 0.0,
            "split_nodes": report.split_nodes,
            "split_rounds": report.rounds,
            "split_stop": report.stop_reason,
            "split_budget_tokens": report.budget_tokens,
            "recomputed_tokens": report.recomputed_tokens,
            "saved_tokens": saved,
            "optimal_saved_tokens": optimal,
            "sharing_kept": saved / optimal if optimal else 1.0,
        },
    )
