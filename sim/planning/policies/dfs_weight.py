"""dfs-weight: SGLang's DFS-weight order, a DFS whose children go heaviest subtree first.

Source: sgl-project/sglang, ``python/sglang/srt/managers/schedule_policy.py``
(``SchedulePolicy._sort_by_dfs_weight``) and ``python/sglang/srt/mem_cache/base_prefix_cache.py``
(``_dfs_weight_order``), read at commit ``00550cd``. Each waiting request is attached to the node
where its prefix match ends; a node's weight is the number of waiting requests at or below it; the
order visits a node's children by weight descending (a stable sort: ties keep insertion order) and
then the requests attached to the node itself.

Unlike ``lpm``, SGLang applies it to any length of waiting queue (``_determine_active_policy``
falls back to FCFS above 128 waiting requests for ``lpm`` and ``hrrn`` only), so over a whole
offline pool it is a static order of the pool's prefix tree (:meth:`PrefixTree.heaviest_first_siblings`):
every request's leaf hangs under its last prompt segment, and a node's own requests follow its
inner children. What does not map: SGLang's tree is its radix *cache*, so it weighs only prefixes
already cached (on a cold cache every request sits at the root and the order is FCFS until the
first prompts are cached); here the whole pool's tree is known up front, which is the order SGLang
converges to once the pool's shared prefixes are cached. One request per unit; no prefill cap.
"""

from __future__ import annotations

from typing import Any

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, no_options, per_request_plan


def build(ctx: PlanningInput, **options: Any) -> Plan:
    no_options("dfs-weight", options)
    tree = ctx.tree
    return per_request_plan("dfs-weight", ctx, tree.order_of(tree.heaviest_first_siblings()))
