"""batchllm: BatchLLM's ordering (Zheng et al., MLSys 2026, arXiv 2412.03594; microsoft/MixLLM,
branch ``batchllm_vllm_064``).

What is taken, and from where:

* **Global prefix groups** (paper §3, "global prefix identification"; code
  ``vllm/inputs/prefix_clustering.py``, ``PromptPrefixCluster``). All prompts go into one prefix
  tree whose first level is the set of groups: a request belongs to the group of the root child its
  prompt starts with. ``_enlarge_1st_prefix_tokens`` then deepens groups bottom-up: a grandchild
  ``g`` of a first-level node ``c`` (depth-first, deeper levels first) becomes a group of its own,
  with prefix ``c + g``, when that shares more than it costs, ``(leaves(g) - 1) * len(g) > len(c)``
  (``g``'s tokens shared by its other requests against ``c``'s tokens computed once more); a node
  left with one child absorbs it. Here the tree is :class:`PrefixTree` over segments, made radix
  (a chain of single-child segments is one node of their summed length) before the rule runs.
* **Groups scheduled together** (code ``vllm/core/csgroup_manager.py``, ``vllm/entrypoints/llm.py``
  ``_conv_CSGroup2Sequences``): a group's requests are consecutive in the order, in the tree's
  insertion order (``_expand_tokens``), so its prefix is computed once and held while they run.
* **Decode-heavy groups first** (abstract and §4: "schedules the requests with larger ratio of
  decoding first to better mix the decoding tokens with the latter prefill chunks"): groups are
  sorted, stably, by their ratio of estimated output tokens to the prompt tokens they compute
  (prefix once plus every request's distinct part), largest first. The exact ratio of the paper's
  body could not be read here; this is the ratio the abstract names, over the group.
* **Token batching** (code ``vllm/core/scheduler.py``: ``SchedulingBudget.token_batching_degree``
  lifts the request cap for chunked prefill; a batch is bounded by its token budget and KV): this is
  blendsim's engine already (8,192-token budget, admission by KV capacity; the 2,048 running cap
  never binds on the presets), so the plan adds no prefill cap.

What does not map: BatchLLM prefills a group's prefix as a request of its own and pins its KV until
the group's last request finishes; blendsim's radix cache shares the prefix from the first member's
prefill and keeps it while any member runs (LRU only after), which for consecutive members is the
same computation. Its prefix-shared attention kernel is a kernel, not an order: not modelled. One
request per unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, no_options, per_request_plan
from blendsim.sim.planning.tree import ROOT, PrefixTree


def build(ctx: PlanningInput, **options: Any) -> Plan:
    no_options("batchllm", options)
    groups = prefix_groups(ctx.tree)
    d = ctx.estimate.lengths.astype(np.float64)
    prefill = np.array([group_prefill_tokens(ctx.tree, g, reqs) for g, reqs in groups], dtype=np.float64)
    ratio = np.array([d[reqs].sum() for _, reqs in groups]) / np.maximum(prefill, 1.0)
    ranked = np.argsort(-ratio, kind="stable")
    order = np.concatenate([groups[k][1] for k in ranked]) if groups else np.zeros(0, dtype=np.int64)
    plan = per_request_plan("batchllm", ctx, order)
    plan.stats.update(groups=len(groups), top_group_ratio=float(ratio[ranked[0]]) if groups else 0.0)
    return plan


def group_prefill_tokens(tree: PrefixTree, prefix_node: int, requests: np.ndarray) -> float:
    """Prompt tokens a group computes: its prefix once, then each request's part past it."""
    p = tree.prefix_len[tree.leaf_offset + requests]
    return float(tree.prefix_len[prefix_node] + (p - tree.prefix_len[prefix_node]).sum())


def prefix_groups(tree: PrefixTree) -> list[tuple[int, np.ndarray]]:
    """BatchLLM's single-level prefix groups of ``tree``: ``(prefix node, request positions)`` in
    the first level's order, each group's requests in DFS insertion order."""
    radix = _Radix(tree)
    radix.enlarge(ROOT)
    return [(radix.end[c], np.array(radix.requests(c), dtype=np.int64)) for c in radix.children[ROOT]]


class _Radix:
    """The tree's inner nodes as a mutable radix tree: a node keeps its id when it absorbs a
    single-child chain, ``end`` names the chain's last tree node (whose ``prefix_len`` is the
    node's whole prefix, also after a promotion: that copies the tokens above it), lengths in
    tokens, request leaves per node."""

    def __init__(self, tree: PrefixTree) -> None:
        lo = tree.leaf_offset
        self.length: dict[int, int] = {v: int(tree.seg_len[v]) for v in range(lo)}
        self.end: dict[int, int] = {v: v for v in range(lo)}
        self.children: dict[int, list[int]] = {v: [] for v in range(lo)}
        self.leaves: dict[int, list[int]] = {v: [] for v in range(lo)}
        self.count = tree.count
        for v in np.argsort(tree.first_seen[1:lo], kind="stable") + 1:
            self.children[int(tree.parent[v])].append(int(v))
        for i in range(tree.n_leaves):
            self.leaves[int(tree.parent[lo + i])].append(i)
        for v in range(lo - 1, 0, -1):  # children before parents: merge each node's single child in
            if len(self.children[v]) == 1 and not self.leaves[v]:
                self._absorb(v, self.children[v][0])

    def _absorb(self, v: int, child: int) -> None:
        """``v`` takes over its only child ``child`` (its tokens, children and leaves)."""
        self.length[v] += self.length[child]
        self.children[v] = self.children.pop(child)
        self.leaves[v] = self.leaves.pop(child)
        self.end[v] = self.end.pop(child)

    def width(self, v: int) -> int:
        return int(self.count[v])

    def enlarge(self, node: int) -> None:
        """``PromptPrefixCluster._enlarge_1st_prefix_tokens``'s rule on ``node``'s subtree."""
        for child in list(self.children[node]):
            self.enlarge(child)
            for grand in list(self.children[child]):
                gain = (self.width(grand) - 1) * self.length[grand] - self.length[child]
                if gain > 0:  # grand becomes a sibling of child with child's tokens in front
                    self.length[grand] += self.length[child]
                    self.children[child].remove(grand)
                    self.children[node].append(grand)
                if len(self.children[child]) + len(self.leaves[child]) == 1 and self.children[child]:
                    self._absorb(child, self.children[child][0])
                    break

    def requests(self, v: int) -> list[int]:
        """Request positions under ``v``, its children's first (insertion order), then its own."""
        out: list[int] = []
        stack = [v]
        while stack:
            u = stack.pop()
            out.extend(self.leaves[u])
            stack.extend(reversed(self.children[u]))
        return out
