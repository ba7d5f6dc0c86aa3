"""Sort, split and merge the resource-aware prefix tree (paper Algorithms 1 and 2, §5.4, A.2).

**Sort** (Algorithm 1): every node's children by density (E6, with sharing) descending, ties in
insertion order. Only siblings move, so prefix locality is kept.

**Split** (Algorithm 2, as decided here; blendserve.md §3.3 leaves the details open):

* An *outlier* is a node below a root child whose density lies on the other side of the target
  ``ρ(rt)`` than the rest of its parent's subtree (its siblings' requests and the parent's own):
  the scanner on that side would otherwise admit it as if it were of its siblings' kind. Leaves are
  outliers like any node (the "gap in the pseudo-code"). An outlier with an outlier ancestor waits
  for the next round (splits in one round never nest). Within one round and one parent only
  outliers on the side of that parent's top-priority outlier are taken: removing them can only
  push the parent's rest further from their side, whereas one dominant outlier (a single huge
  output among short ones) makes every short sibling look like an outlier until it is gone.
* Splitting an outlier re-attaches it under the root, where sorting places it among the root's
  children by density; it recomputes its prefix: cost = ``prefix_len(parent)`` tokens.
* Budget ``t`` in tokens: ``(1 - keep_sharing) × optimal saved tokens`` (default keeps 99 % of
  the optimal sharing), or ``budget_tokens``. Each round takes the affordable outliers by priority
  ``|Σcomp − ρ(rt)·Σmem| / cost`` (misplaced work per recomputed token), greedily, while the
  cumulative cost fits the remaining budget.
* Rounds repeat sort → split until (C1) the DFS leaf sequence is non-increasing in (per-request)
  density, or (C2) no outlier's cost fits the remaining budget (including: no outlier left), or a
  safety cap of ``max_rounds``. A node is split at most once (afterwards its parent is the root).

**Merge** (A.2): units for the dual scanner. A node is *homogeneous* when all its requests lie on
the same side of ``ρ(rt)`` (per-request density). Each maximal homogeneous subtree is merged; runs
of adjacent homogeneous siblings on the same side are merged too, except directly under the root
(the root's children are different sources, or split-off outliers, whose densities the scanner
should see apart). Units stay in DFS order, so merging never changes sharing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendsim.errors import UserError
from blendsim.sim.planning.tree import ROOT, PrefixTree


@dataclass(frozen=True)
class TransformConfig:
    keep_sharing: float = 0.99  # fraction of the optimal saved tokens the split budget must keep
    budget_tokens: float | None = None  # explicit budget t in tokens (overrides keep_sharing)
    split: bool = True
    merge: bool = True
    max_rounds: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_sharing <= 1.0:
            raise UserError(f"keep_sharing must be in [0, 1], got {self.keep_sharing}")
        if self.budget_tokens is not None and self.budget_tokens < 0:
            raise UserError(f"split budget must be >= 0 tokens, got {self.budget_tokens}")


@dataclass
class SplitReport:
    budget_tokens: float
    recomputed_tokens: int
    split_nodes: int
    leaves_split: int
    rounds: int
    stop_reason: str  # "C1", "C2", "max_rounds" or "disabled"


@dataclass
class Units:
    order: np.ndarray  # request positions, left to right
    bounds: np.ndarray  # int64[units + 1]
    comp: np.ndarray
    mem: np.ndarray
    prompt: np.ndarray  # mean p
    output: np.ndarray  # mean estimated d


def is_monotone(values: np.ndarray) -> bool:
    """True if ``values`` is non-increasing (relative tolerance 1e-12)."""
    return bool(np.all(values[1:] <= values[:-1] * (1 + 1e-12)))


def outliers(tree: PrefixTree, target: float) -> np.ndarray:
    """Outlier node ids (see the module docstring), none an ancestor of another."""
    par = tree.parent
    v = np.arange(1, tree.num_nodes)
    q = par[v]
    comp = tree.comp()
    rest_count = tree.count[q] - tree.count[v]
    rest_comp = comp[q] - tree.token_comp * (tree.sum_d[v] + tree.seg_len[v] + tree.inner[v])
    rest_mem = tree.sum_mem[q] - tree.sum_mem[v]
    side = comp[v] >= target * tree.sum_mem[v]
    rest_side = rest_comp >= target * rest_mem
    cand = np.zeros(tree.num_nodes, dtype=bool)
    cand[1:] = (q != ROOT) & (tree.count[v] > 0) & (rest_count > 0) & (side != rest_side)
    below = np.zeros(tree.num_nodes, dtype=bool)
    for level in tree.levels[1:]:
        below[level] = below[par[level]] | cand[par[level]]
    return np.flatnonzero(cand & ~below)


def one_side_per_parent(
    tree: PrefixTree, cand: np.ndarray, priority: np.ndarray, target: float
) -> np.ndarray:
    """``cand`` ranked by ``priority``, keeping per parent only the side of its top candidate."""
    rank = np.lexsort((cand, -priority))
    cand = cand[rank]
    side = tree.comp()[cand] >= target * tree.sum_mem[cand]
    _, first = np.unique(tree.parent[cand], return_index=True)
    top_side = np.zeros(tree.num_nodes, dtype=bool)
    top_side[tree.parent[cand[first]]] = side[first]
    result: np.ndarray = cand[side == top_side[tree.parent[cand]]]
    return result


def split(tree: PrefixTree, config: TransformConfig) -> SplitReport:
    """Repeat sort → split until C1 or C2 (module docstring); edits ``tree`` in place."""
    optimal = tree.saved_tokens()
    budget = (
        config.budget_tokens if config.budget_tokens is not None else (1.0 - config.keep_sharing) * optimal
    )
    used, rounds, reason = 0, 0, "disabled"
    while config.split:
        if rounds >= config.max_rounds:
            reason = "max_rounds"
            break
        if is_monotone(tree.leaf_density()[tree.dfs_order(by_density=True)]):
            reason = "C1"
            break
        target = float(tree.density()[ROOT])
        cand = outliers(tree, target)
        cost = tree.prefix_len[tree.parent[cand]]
        fits = cost <= budget - used
        cand, cost = cand[fits], cost[fits]
        if cand.size == 0:
            reason = "C2"
            break
        misplaced = np.abs(tree.comp()[cand] - target * tree.sum_mem[cand])
        ranked = one_side_per_parent(tree, cand, misplaced / cost, target)
        cost = tree.prefix_len[tree.parent[ranked]]
        take = np.cumsum(cost) <= budget - used
        chosen = ranked[take]
        used += int(cost[take].sum())
        tree.detach(chosen)
        rounds += 1
    detached = np.flatnonzero(tree.detached)
    return SplitReport(
        budget_tokens=float(budget),
        recomputed_tokens=optimal - tree.saved_tokens(),
        split_nodes=int(detached.size),
        leaves_split=int(tree.count[detached].sum()),
        rounds=rounds,
        stop_reason=reason,
    )


def merge(tree: PrefixTree, target: float, enabled: bool = True) -> Units:
    """The sorted tree's DFS leaf sequence cut into units (module docstring, **Merge**)."""
    siblings = tree.sibling_order(by_density=True)
    start = tree.leaf_start(siblings)
    lo, n = tree.leaf_offset, tree.n_leaves
    order = np.empty(n, dtype=np.int64)
    order[start[lo:]] = np.arange(n)
    left_leaf = tree.leaf_density() >= target
    left = tree.subtree_sum(left_leaf.astype(np.int64))
    if enabled:
        homog = (left == 0) | (left == tree.count)
        homog[ROOT] = False
        top = np.full(tree.num_nodes, -1, dtype=np.int64)
        for level in tree.levels[1:]:
            par = tree.parent[level]
            top[level] = np.where(homog[par], top[par], np.where(homog[level], level, -1))
    else:
        top = np.arange(tree.num_nodes, dtype=np.int64)
    seq_top = top[lo + order]
    new_top = np.ones(n, dtype=bool)
    new_top[1:] = seq_top[1:] != seq_top[:-1]
    tside = left[seq_top] > 0
    same_run = np.zeros(n, dtype=bool)
    same_parent = tree.parent[seq_top[1:]] == tree.parent[seq_top[:-1]]
    same_run[1:] = same_parent & (tree.parent[seq_top[1:]] != ROOT) & (tside[1:] == tside[:-1])
    if not enabled:
        same_run[:] = False
    unit_start = new_top & ~same_run
    bounds = np.append(np.flatnonzero(unit_start), n).astype(np.int64)
    if n == 0:
        bounds = np.zeros(1, dtype=np.int64)
        return Units(order, bounds, *(np.zeros(0) for _ in range(4)))
    seg = bounds[:-1]
    size = np.diff(bounds).astype(np.float64)
    d = tree.leaf_d[order]
    p = tree.prefix_len[lo + order].astype(np.float64)
    mem = np.add.reduceat(tree.leaf_mem[order], seg)
    # tokens the unit computes: its tops' own tokens plus the shared path above them, once
    tops_at = np.flatnonzero(new_top)
    tops = seq_top[tops_at]
    unit_of_top = np.searchsorted(bounds, tops_at, side="right") - 1
    own = np.zeros(len(seg))
    np.add.at(own, unit_of_top, (tree.seg_len[tops] + tree.inner[tops]).astype(np.float64))
    above = tree.prefix_len[tree.parent[seq_top[seg]]].astype(np.float64)
    comp = tree.token_comp * (np.add.reduceat(d, seg) + own + above)
    return Units(order, bounds, comp, mem, np.add.reduceat(p, seg) / size, np.add.reduceat(d, seg) / size)
