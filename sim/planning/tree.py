"""The resource-aware prefix tree (paper §5.1), stored as flat numpy arrays.

Nodes: ``0`` is the root; ``1 .. n_seg`` are the trace's distinct prompt segments, numbered by first
appearance; ``n_seg + 1 + i`` is the leaf of request ``i``. Because a segment id fixes its whole
prefix (the Trace invariant), a segment is exactly one trie node. Parents always have smaller ids
than their children (also after splitting, which re-attaches nodes under the root), so node-id order
is a topological order.

Per node the tree keeps subtree aggregates, so that density is O(1) to read after any edit:
``count`` (requests), ``sum_d`` (estimated output tokens), ``sum_p`` (prompt tokens, no sharing),
``sum_mem`` (E4 memory time) and ``inner`` (prompt tokens strictly below the node, each computed
once). The node's request set computes its own path once, so with ``prefix_len`` the tokens from the
root through the node::

    distinct(v) = prefix_len(v) + inner(v)                      # prompt tokens computed for the set
    comp(v)     = token_comp_time * (sum_d(v) + distinct(v))    # E3 after sharing, E6's numerator
    density(v)  = comp(v) / sum_mem(v)                          # ratio of sums with sharing (E6)

``inner`` is additive: ``inner(v) = sum over children c with requests of (seg_len(c) + inner(c))``.
A node split off and re-attached under the root gets ``seg_len = prefix_len``: it recomputes its whole prefix.
Invariant: ``seg_len(c) == prefix_len(c) - prefix_len(parent(c))`` for every non-root node.

Building is one vectorised pass over the segments plus one sort of the segment ids (``np.unique``);
sums are re-aggregated level by level (depth is the number of segments per request, a handful).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blendsim.profiler.cost import mem_time, token_comp_time
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec
from blendsim.traces.trace import Trace

ROOT = 0


@dataclass
class PrefixTree:
    parent: np.ndarray  # int64[N]; -1 for the root
    seg_len: np.ndarray  # int64[N]: tokens the node itself adds (0 for an attached leaf)
    prefix_len: np.ndarray  # int64[N]: tokens from the root through the node (p for a leaf)
    first_seen: np.ndarray  # int64[N]: request position of first appearance (insertion order)
    n_leaves: int
    detached: np.ndarray = field(init=False)  # bool[N]: re-attached under the root by a split
    leaf_d: np.ndarray = field(init=False)  # float64[n]: output length used for planning
    leaf_mem: np.ndarray = field(init=False)  # float64[n]: E4 memory time of each request
    token_comp: float = 0.0
    count: np.ndarray = field(init=False)
    sum_d: np.ndarray = field(init=False)
    sum_p: np.ndarray = field(init=False)
    sum_mem: np.ndarray = field(init=False)
    inner: np.ndarray = field(init=False)
    depth: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.num_nodes
        self.detached = np.zeros(n, dtype=bool)
        self.leaf_d = np.ones(self.n_leaves, dtype=np.float64)
        self.leaf_mem = np.zeros(self.n_leaves, dtype=np.float64)
        self.count = np.zeros(n, dtype=np.int64)
        self.sum_d = np.zeros(n)
        self.sum_p = np.zeros(n)
        self.sum_mem = np.zeros(n)
        self.inner = np.zeros(n)
        self.refresh_depth()

    # ------------------------------------------------------------------ shape
    @property
    def num_nodes(self) -> int:
        return int(self.parent.shape[0])

    @property
    def leaf_offset(self) -> int:
        """Node id of request 0's leaf; request ``i`` is node ``leaf_offset + i``."""
        return self.num_nodes - self.n_leaves

    def is_leaf(self) -> np.ndarray:
        out = np.zeros(self.num_nodes, dtype=bool)
        out[self.leaf_offset :] = True
        return out

    @classmethod
    def from_trace(cls, trace: Trace) -> PrefixTree:
        """The trie of ``trace``'s prompts over segment ids (structure only; see :meth:`set_lengths`)."""
        n = len(trace)
        offsets, ids, lens = trace.seg_offsets, trace.seg_ids, trace.seg_lens
        counts = np.diff(offsets)
        uniq, first_idx, inv = np.unique(ids, return_index=True, return_inverse=True)
        by_first = np.argsort(first_idx, kind="stable")
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[by_first] = np.arange(len(uniq))
        node_of_occ = rank[inv.reshape(-1)] + 1  # node id of every segment occurrence
        pred = np.zeros(len(ids), dtype=np.int64)
        pred[1:] = node_of_occ[:-1]
        pred[offsets[:-1]] = ROOT
        cum = np.cumsum(lens)
        req_of_occ = np.repeat(np.arange(n, dtype=np.int64), counts)
        start_cum = (cum - lens)[offsets[:-1]]
        prefix_at_occ = cum - start_cum[req_of_occ]
        first_occ = first_idx[by_first]
        n_seg = len(uniq)
        total = 1 + n_seg + n
        parent = np.empty(total, dtype=np.int64)
        seg_len = np.zeros(total, dtype=np.int64)
        prefix = np.zeros(total, dtype=np.int64)
        first_seen = np.empty(total, dtype=np.int64)
        parent[0], first_seen[0] = -1, -1
        parent[1 : n_seg + 1] = pred[first_occ]
        seg_len[1 : n_seg + 1] = lens[first_occ]
        prefix[1 : n_seg + 1] = prefix_at_occ[first_occ]
        first_seen[1 : n_seg + 1] = req_of_occ[first_occ]
        parent[n_seg + 1 :] = node_of_occ[offsets[1:] - 1]
        prefix[n_seg + 1 :] = trace.prompt_len
        first_seen[n_seg + 1 :] = np.arange(n)
        return cls(parent, seg_len, prefix, first_seen, n)

    def refresh_depth(self) -> None:
        """Depth of every node (root 0); parents precede children, so a few sweeps converge."""
        depth = np.zeros(self.num_nodes, dtype=np.int64)
        if self.num_nodes > 1:
            while True:
                new = depth.copy()
                new[1:] = depth[self.parent[1:]] + 1
                if np.array_equal(new, depth):
                    break
                depth = new
        self.depth = depth
        order = np.argsort(depth, kind="stable")
        bounds = np.searchsorted(depth[order], np.arange(int(depth.max()) + 2))
        self._levels = [order[bounds[k] : bounds[k + 1]] for k in range(len(bounds) - 1)]

    @property
    def levels(self) -> list[np.ndarray]:
        """Node ids grouped by depth, root level first."""
        return self._levels

    # ------------------------------------------------------------------ costs
    def set_lengths(self, output_len: np.ndarray, model: ModelSpec, gpu: HardwareSpec) -> None:
        """Price every leaf with (estimated) output lengths at datasheet peaks and re-aggregate."""
        p = self.prefix_len[self.leaf_offset :]
        self.leaf_d = np.asarray(output_len, dtype=np.float64).copy()
        self.leaf_mem = mem_time(p, self.leaf_d, model, gpu)
        self.token_comp = token_comp_time(model, gpu)
        self.aggregate()

    def aggregate(self) -> None:
        """Recompute every subtree sum from the leaves up (after any batch of edits)."""
        n, lo = self.num_nodes, self.leaf_offset
        self.count = np.zeros(n, dtype=np.int64)
        self.count[lo:] = 1
        self.sum_d = np.zeros(n)
        self.sum_d[lo:] = self.leaf_d
        self.sum_p = np.zeros(n)
        self.sum_p[lo:] = self.prefix_len[lo:]
        self.sum_mem = np.zeros(n)
        self.sum_mem[lo:] = self.leaf_mem
        self.inner = np.zeros(n)
        for level in reversed(self.levels[1:]):
            par = self.parent[level]
            np.add.at(self.count, par, self.count[level])
            np.add.at(self.sum_d, par, self.sum_d[level])
            np.add.at(self.sum_p, par, self.sum_p[level])
            np.add.at(self.sum_mem, par, self.sum_mem[level])
            live = self.count[level] > 0  # a node whose requests were all split off computes nothing
            np.add.at(self.inner, par, np.where(live, self.seg_len[level] + self.inner[level], 0))

    def subtree_sum(self, leaf_values: np.ndarray) -> np.ndarray:
        """Per node: the sum of ``leaf_values`` (by request position) over the node's leaves."""
        out = np.zeros(self.num_nodes, dtype=np.result_type(leaf_values, np.int64))
        out[self.leaf_offset :] = leaf_values
        for level in reversed(self.levels[1:]):
            np.add.at(out, self.parent[level], out[level])
        return out

    def distinct_tokens(self) -> np.ndarray:
        """Prompt tokens the node's request set computes, its own path counted once."""
        result: np.ndarray = self.prefix_len + self.inner
        return result

    def comp(self) -> np.ndarray:
        """Σcomp after sharing (E3 summed, shared tokens once), at datasheet peaks."""
        result: np.ndarray = self.token_comp * (self.sum_d + self.distinct_tokens())
        return result

    def density(self) -> np.ndarray:
        """E6 per node, a ratio of sums; +inf for a node with no memory time."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.sum_mem > 0, self.comp() / np.where(self.sum_mem > 0, self.sum_mem, 1.0), np.inf
            )

    def leaf_density(self) -> np.ndarray:
        """Density of each request alone (no sharing), by request position."""
        p = self.prefix_len[self.leaf_offset :]
        result: np.ndarray = self.token_comp * (p + self.leaf_d) / self.leaf_mem
        return result

    def saved_tokens(self) -> int:
        """Prompt tokens served from an unbounded cache under this tree (split-offs recompute)."""
        return int(round(self.sum_p[ROOT] - self.inner[ROOT]))

    # ------------------------------------------------------------------ order
    def sibling_order(self, by_density: bool) -> np.ndarray:
        """Non-root nodes grouped by parent; siblings by density descending (``by_density``) or by
        insertion order. Ties in density keep insertion order (a stable, deterministic sort)."""
        nodes = np.arange(1, self.num_nodes)
        key = -self.density()[nodes] if by_density else np.zeros(len(nodes))
        result: np.ndarray = nodes[np.lexsort((self.first_seen[nodes], key, self.parent[nodes]))]
        return result

    def heaviest_first_siblings(self) -> np.ndarray:
        """Non-root nodes grouped by parent; a node's inner children by subtree request count
        descending (ties in insertion order), then its own requests (leaves) in insertion order:
        SGLang's DFS-weight (:mod:`blendsim.sim.planning.policies.dfs_weight`)."""
        nodes = np.arange(1, self.num_nodes)
        leaf = nodes >= self.leaf_offset
        keys = (self.first_seen[nodes], -self.count[nodes], leaf, self.parent[nodes])
        result: np.ndarray = nodes[np.lexsort(keys)]
        return result

    def leaf_start(self, siblings: np.ndarray) -> np.ndarray:
        """Position of each node's first leaf in the DFS leaf sequence for sibling order ``siblings``.

        Node ``v`` covers the leaf positions ``[start[v], start[v] + count[v])``.
        """
        cnt = self.count[siblings]
        excl = np.cumsum(cnt) - cnt
        par = self.parent[siblings]
        first = np.ones(len(siblings), dtype=bool)
        first[1:] = par[1:] != par[:-1]
        group = np.cumsum(first) - 1
        offset = np.zeros(self.num_nodes, dtype=np.int64)
        offset[siblings] = excl - excl[first][group]
        start = np.zeros(self.num_nodes, dtype=np.int64)
        for level in self.levels[1:]:
            start[level] = start[self.parent[level]] + offset[level]
        return start

    def dfs_order(self, by_density: bool) -> np.ndarray:
        """Request positions in DFS order (leaves left to right)."""
        return self.order_of(self.sibling_order(by_density))

    def order_of(self, siblings: np.ndarray) -> np.ndarray:
        """Request positions in the DFS order that sibling order ``siblings`` gives."""
        start = self.leaf_start(siblings)
        order = np.empty(self.n_leaves, dtype=np.int64)
        order[start[self.leaf_offset :]] = np.arange(self.n_leaves)
        return order

    # ------------------------------------------------------------------ edits
    def detach(self, nodes: np.ndarray) -> None:
        """Split ``nodes`` off and re-attach them under the root (they recompute their prefix).

        No node may be an ancestor of another in the same call. Sums are re-aggregated.
        """
        nodes = np.asarray(nodes, dtype=np.int64)
        if nodes.size == 0:
            return
        if np.any(nodes == ROOT) or np.any(self.parent[nodes] == ROOT):
            raise ValueError("only nodes below a root child can be split off")
        self.parent[nodes] = ROOT
        self.seg_len[nodes] = self.prefix_len[nodes]
        self.detached[nodes] = True
        self.refresh_depth()
        self.aggregate()
