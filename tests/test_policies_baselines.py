"""The published baselines on hand-made traces with known answers: batchllm, lpm, dfs-weight."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from plan_helpers import GPU, MODEL

from blendsim.errors import UserError
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.planning.policies import ONE_SIDED, ORDERS, check_disaggregable
from blendsim.sim.planning.policies.batchllm import prefix_groups
from blendsim.sim.planning.tree import PrefixTree
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.layout import DisaggConfig
from blendsim.sim.simulation.lpm_admission import QUEUE_LIMIT, longest_prefix_first
from blendsim.sim.simulation.run import simulate, simulate_policy
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

ORACLE = EstimationConfig("oracle")
A100 = builtin_profile("a100-80g").bind(MODEL)


def _trace(paths: list[tuple[tuple[int, ...], tuple[int, ...], int]]) -> Trace:
    return Trace.from_requests([Request(i, "t", s, ln, d) for i, (s, ln, d) in enumerate(paths)])


def test_dfs_weight_visits_the_heavier_subtree_first_and_a_nodes_own_requests_last() -> None:
    trace = _trace(
        [
            ((1, 10), (50, 5), 3),  # subtree 1: two requests, first to arrive
            ((1, 11), (50, 5), 3),
            ((2, 20), (50, 5), 3),  # subtree 2: four requests
            ((2, 21, 30), (50, 8, 5), 3),  # 2 -> 21 holds two of them: visited before 2 -> 20
            ((2, 21, 31), (50, 8, 5), 3),
            ((2,), (50,), 3),  # its prompt ends at node 2 itself: after 2's children
        ]
    )
    plan = make_plan(trace, "dfs-weight", MODEL, GPU)
    assert list(plan.order) == [3, 4, 2, 5, 0, 1]
    assert list(make_plan(trace, "dfs", MODEL, GPU).order) == [0, 1, 2, 3, 4, 5]


def test_batchllm_enlarges_first_level_prefixes_when_sharing_pays() -> None:
    short = 5  # a short system prompt over two long shared subjects and one lone question
    trace = _trace(
        [((1, 2, 100 + i), (short, 200, 10), 4) for i in range(3)]
        + [((1, 3, 200 + i), (short, 200, 10), 4) for i in range(3)]
        + [((1, 9), (short, 50), 4)]
    )
    tree = PrefixTree.from_trace(trace)
    tree.set_lengths(trace.output_len, MODEL, GPU)
    groups = prefix_groups(tree)
    # (3 - 1) * 200 > 5: each subject becomes a group of its own, prefix = system + subject; the
    # system prompt keeps the lone question, absorbed into its node (prefix 55 tokens)
    got = sorted((int(tree.prefix_len[end]), sorted(reqs.tolist())) for end, reqs in groups)
    assert got == [(short + 50, [6]), (short + 200, [0, 1, 2]), (short + 200, [3, 4, 5])]
    # with the system prompt longer than what a subject shares, nothing moves: one group
    trace = _trace([((1, 2 + i // 2, 100 + i), (500, 200, 10), 4) for i in range(4)])
    tree = PrefixTree.from_trace(trace)
    tree.set_lengths(trace.output_len, MODEL, GPU)
    assert [sorted(r.tolist()) for _, r in prefix_groups(tree)] == [[0, 1, 2, 3]]


def test_batchllm_schedules_decode_heavy_groups_first() -> None:
    trace = _trace(
        [((1, 100 + i), (300, 40), 2) for i in range(4)]  # compute-heavy group, arrives first
        + [((2, 200 + i), (10, 100), 5000) for i in range(2)]  # decode-heavy group
        + [((3, 300 + i), (100, 40), 200) for i in range(2)]  # in between
    )
    plan = make_plan(trace, "batchllm", MODEL, GPU, estimation=ORACLE)
    assert list(plan.order) == [4, 5, 6, 7, 0, 1, 2, 3]
    assert plan.stats["groups"] == 3 and plan.prefill_cap is None and plan.admission == "fcfs"


class _Engine:
    """What longest_prefix_first reads from an engine: the cache's hits and the segment paths."""

    def __init__(self, trace: Trace, cached: dict[int, int]) -> None:
        self.trace, self.cached = trace, cached
        self.requests = self

    def cached_prefix_tokens(self, pos: int) -> int:
        return self.cached.get(pos, 0)

    def segments(self, pos: int) -> tuple[list[int], list[int]]:
        ids, lens = self.trace.segments_of(pos)
        return [int(x) for x in ids], [int(x) for x in lens]


def test_longest_prefix_first_sorts_by_cached_match_and_holds_back_in_batch_duplicates() -> None:
    trace = _trace(
        [((1, 10), (400, 9), 1), ((2, 20), (400, 9), 1), ((2, 21), (400, 9), 1), ((3, 30), (20, 9), 1)]
        + [((3, 31), (20, 9), 1)]
    )
    engine: Any = _Engine(trace, {0: 100, 3: 0})
    # 0 has the longest cached prefix; 2 and 1 share 400 uncached tokens: 1, later in the queue,
    # is held back behind 2; 4 and 3 share only 20 (< 32): neither is held back
    assert longest_prefix_first(engine, [4, 3, 2, 1, 0]) == [0, 4, 3, 2, 1]


def test_lpm_is_fcfs_while_more_than_128_wait_then_longest_cached_prefix_first() -> None:
    own = 520  # above the 512-token budget: one admission per step, so the switch is exact
    head = [((1 + i % 2, 1000 + i), (400, own), 1) for i in range(172)]  # A, B alternate
    tail = [((1 if i % 2 == 0 else 3, 2000 + i), (400, own), 1) for i in range(QUEUE_LIMIT)]  # A, C
    trace = _trace(head + tail)
    plan = make_plan(trace, "lpm", MODEL, GPU, estimation=ORACLE)
    res = simulate(trace, plan, MODEL, A100, EngineConfig(token_budget=512))
    admitted = list(np.asarray(res.admission["position"]))
    arrival_tail = list(range(172, 300))
    a_tail, c_tail = arrival_tail[0::2], arrival_tail[1::2]
    # the head alternates A/B in arrival order (FCFS); then the cached A's first, then C's
    assert admitted == list(range(172)) + a_tail + c_tail


def test_engine_side_and_two_sided_policies_refuse_a_disaggregated_layout() -> None:
    assert "lpm" in ORDERS and "lpm" not in ONE_SIDED and "blend" not in ONE_SIDED
    assert {"batchllm", "dfs-weight", "dfs-tuned"} <= set(ONE_SIDED)
    with pytest.raises(UserError, match="re-sorts each replica's waiting queue"):
        check_disaggregable("lpm")
    trace = _trace([((1, 10 + i), (50, 5), 3) for i in range(4)])
    with pytest.raises(UserError, match="'lpm' re-sorts"):
        simulate_policy(trace, "lpm", MODEL, A100, disagg=DisaggConfig(1, 1))
    for name in ("batchllm", "dfs-weight"):
        res = simulate_policy(trace, name, MODEL, A100, disagg=DisaggConfig(1, 1))
        assert res.policy == name and res.makespan_s > 0
