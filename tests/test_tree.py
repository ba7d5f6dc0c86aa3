"""The resource-aware prefix tree: structure, sums with sharing, sorting, splitting (sim/tree.py,
transform.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from plan_helpers import GPU, MODEL, leaves_under, outlier_trace, random_traces

from blendsim.profiler.cost import comp_time, mem_time, set_density, token_comp_time
from blendsim.sim.planning.transform import TransformConfig, is_monotone, outliers, split
from blendsim.sim.planning.tree import ROOT, PrefixTree
from blendsim.traces.trace import Trace


def priced(trace: Trace) -> PrefixTree:
    tree = PrefixTree.from_trace(trace)
    tree.set_lengths(trace.output_len, MODEL, GPU)
    return tree


def check_sums(tree: PrefixTree, trace: Trace) -> None:
    """Every node's sums equal the sums over its leaves, computed by brute force."""
    d, p = trace.output_len.astype(float), trace.prompt_len
    for v in range(tree.num_nodes):
        leaves = leaves_under(tree, v)
        assert tree.count[v] == len(leaves)
        assert np.isclose(tree.sum_d[v], d[leaves].sum())
        assert np.isclose(tree.sum_p[v], p[leaves].sum())
        assert np.isclose(tree.sum_mem[v], mem_time(p[leaves], d[leaves], MODEL, GPU).sum())
        below = set()
        for i in leaves:
            u = tree.leaf_offset + int(i)
            while u != v:
                below.add(u)
                u = int(tree.parent[u])
        assert tree.inner[v] == sum(int(tree.seg_len[u]) for u in below)


def scoped_saved(tree: PrefixTree, trace: Trace) -> int:
    """Saved prompt tokens with an unbounded cache when every split-off node recomputes its path."""
    keys: dict[tuple[int, int], int] = {}
    for i in range(len(trace)):
        u, scope = tree.leaf_offset + i, -1
        while u != ROOT:  # nearest split-off ancestor-or-self
            if tree.detached[u]:
                scope = u
                break
            u = int(tree.parent[u])
        ids, lens = trace.segments_of(i)
        for k, (s, n) in enumerate(zip(ids, lens, strict=True)):
            above = scope != -1 and (
                scope >= tree.leaf_offset or int(tree.prefix_len[scope]) >= int(lens[: k + 1].sum())
            )
            keys[(scope if above else -1, int(s))] = int(n)
    return int(trace.prompt_len.sum() - sum(keys.values()))


def test_structure_of_a_small_trie() -> None:
    trace = outlier_trace(n_short=3)
    tree = PrefixTree.from_trace(trace)
    assert tree.n_leaves == 7 and tree.num_nodes == 1 + 2 + 7 + 7
    assert np.all(tree.parent[1:] < np.arange(1, tree.num_nodes))  # parents precede children
    leaf0 = tree.leaf_offset
    assert tree.prefix_len[leaf0] == 80 and tree.seg_len[leaf0] == 0
    assert tree.seg_len[tree.parent[tree.parent[leaf0]]] == 50  # the shared prefix


def test_density_matches_the_cost_model_with_sharing() -> None:
    trace = outlier_trace()
    tree = priced(trace)
    rho = tree.density()
    expect = set_density(trace.prompt_len, trace.output_len, MODEL, GPU, trace.saved_tokens())
    assert np.isclose(rho[ROOT], expect)
    leaf = tree.leaf_offset
    p, d = trace.prompt_len[0], trace.output_len[0]
    assert np.isclose(rho[leaf], comp_time(p, d, MODEL, GPU) / mem_time(p, d, MODEL, GPU))
    assert np.isclose(
        tree.comp()[ROOT],
        token_comp_time(MODEL, GPU)
        * (trace.output_len.sum() + trace.prompt_len.sum() - trace.saved_tokens()),
    )


@settings(max_examples=40, deadline=None)
@given(random_traces())
def test_sums_and_sharing_hold_after_every_split(trace: Trace) -> None:
    tree = priced(trace)
    assert tree.saved_tokens() == trace.saved_tokens()
    check_sums(tree, trace)
    for _ in range(3):
        cand = outliers(tree, float(tree.density()[ROOT]))
        cand = cand[tree.parent[cand] != ROOT]
        if cand.size == 0:  # no outlier: split the deepest node with requests instead
            live = np.flatnonzero((tree.parent > ROOT) & (tree.count > 0))
            cand = live[-1:]
        if cand.size == 0:
            break
        tree.detach(cand)
        check_sums(tree, trace)
        assert tree.saved_tokens() == scoped_saved(tree, trace)


@settings(max_examples=40, deadline=None)
@given(random_traces())
def test_sorted_siblings_are_non_increasing(trace: Trace) -> None:
    tree = priced(trace)
    sib = tree.sibling_order(by_density=True)
    rho, par = tree.density()[sib], tree.parent[sib]
    same = par[1:] == par[:-1]
    assert np.all(rho[1:][same] <= rho[:-1][same])


@settings(max_examples=40, deadline=None)
@given(random_traces())
def test_dfs_orders_are_permutations_with_contiguous_subtrees(trace: Trace) -> None:
    tree = priced(trace)
    for by_density in (False, True):
        order = tree.dfs_order(by_density)
        assert np.array_equal(np.sort(order), np.arange(len(trace)))
        pos = np.empty(len(order), dtype=np.int64)
        pos[order] = np.arange(len(order))
        for v in range(tree.num_nodes):
            at = np.sort(pos[leaves_under(tree, v)])
            assert at[-1] - at[0] + 1 == len(at)  # a subtree's requests are contiguous


def test_split_moves_the_outlier_within_budget() -> None:
    trace = outlier_trace()
    saved = trace.saved_tokens()  # 20 * 50 tokens of shared prefix
    tight = priced(trace)
    report = split(tight, TransformConfig())  # 1 % of 1000 tokens < 50: nothing affordable
    assert report.split_nodes == 0 and report.stop_reason == "C2"
    tree = priced(trace)
    report = split(tree, TransformConfig(keep_sharing=0.9))
    assert report.leaves_split == 1 and report.recomputed_tokens == 50
    assert tree.saved_tokens() == saved - 50
    moved = np.flatnonzero(tree.detached)
    assert tree.parent[moved[0]] == ROOT and 20 in leaves_under(tree, int(moved[0]))
    assert report.stop_reason in ("C1", "C2")
    check_sums(tree, trace)


def test_split_stops_at_c1_when_already_monotone() -> None:
    trace = outlier_trace()
    tree = priced(trace.subset(np.arange(20)))
    assert is_monotone(tree.leaf_density()[tree.dfs_order(True)])
    report = split(tree, TransformConfig(keep_sharing=0.0))
    assert report.stop_reason == "C1" and report.rounds == 0


def test_no_split_option_and_budget_override() -> None:
    tree = priced(outlier_trace())
    assert split(tree, TransformConfig(split=False)).stop_reason == "disabled"
    tree = priced(outlier_trace())
    assert split(tree, TransformConfig(budget_tokens=49)).split_nodes == 0
    tree = priced(outlier_trace())
    assert split(tree, TransformConfig(budget_tokens=50)).split_nodes == 1
