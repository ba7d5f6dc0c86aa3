"""Data parallel blend: carving balances memory work and the critical path, and DP=2 scales."""

from __future__ import annotations

import numpy as np
import pytest

from blendsim.profiler.profile import builtin_profile
from blendsim.profiler.specs import GPUS, MODELS
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.simulation.replicas import carve_shares, sub_plan
from blendsim.sim.simulation.run import simulate
from blendsim.traces.mixer import make_preset

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)


@pytest.fixture(scope="module")
def two_kinds():
    """trace1's mix at 10K requests (chat, MMLU and a few videos of very unequal lengths), without
    the videos over 16K tokens: one of those alone would be the critical path of any replica, which
    DP cannot shorten (the step bound at DP=2 is then 0.64 of DP=1's; here it is 0.64 too, so 0.7 is
    reachable). The code before the LPT carving and critical-path pacing measured 0.79 here."""
    trace = make_preset("trace1", requests=10_000)
    return trace.subset(np.flatnonzero(trace.output_len <= 16_384))


@pytest.fixture(scope="module")
def plan(two_kinds):
    return make_plan(two_kinds, "blend", LLAMA, GPUS["a100-80g"])


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_carving_balances_memory_and_spreads_the_longest(plan, parts: int) -> None:
    shares = carve_shares(plan, parts)
    assert np.array_equal(np.sort(np.concatenate(shares)), np.arange(len(plan.order)))
    _, mem = plan.request_costs()
    share_mem = [sub_plan(plan, s).unit_mem.sum() for s in shares]
    assert np.isclose(sum(share_mem), plan.unit_mem.sum())
    assert max(share_mem) - min(share_mem) <= mem.max() * 1.001  # LPT: within one request
    longest = np.argsort(-plan.est_output_len[plan.order], kind="stable")[:parts]
    owners = {k for i in longest for k, s in enumerate(shares) if i in set(s.tolist())}
    assert len(owners) == parts  # the `parts` longest requests run on different replicas


def test_sub_plan_of_everything_is_the_plan(plan) -> None:
    whole = sub_plan(plan, np.arange(len(plan.order)))
    assert np.array_equal(whole.unit_bounds, plan.unit_bounds)
    assert np.allclose(whole.unit_comp, plan.unit_comp) and np.allclose(whole.unit_mem, plan.unit_mem)
    assert np.array_equal(whole.unit_output, plan.unit_output)


def test_blend_dp2_scales(two_kinds, plan) -> None:
    one = simulate(two_kinds, plan, LLAMA, A100)
    two = simulate(two_kinds, plan, LLAMA, A100, dp=2)
    assert set(np.unique(two.admission["replica"])) == {0, 1}
    assert two.makespan_s <= 0.7 * one.makespan_s
    assert two.sharing >= 0.95 * two.optimal_sharing
