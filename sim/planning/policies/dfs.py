"""dfs: DFS over the prefix tree with children in insertion (first-appearance) order.

This is the order that maximises prefix reuse (the paper's vLLM-DFS / SGLang-DFS / NanoFlow-DFS
baselines). One request per unit.
"""

from __future__ import annotations

from typing import Any

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, no_options, per_request_plan


def build(ctx: PlanningInput, **options: Any) -> Plan:
    no_options("dfs", options)
    return per_request_plan("dfs", ctx, ctx.tree.dfs_order(by_density=False))
