"""Engine invariants on small hand-made traces and hand-made FCFS plans (built-in A100 profile)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blendsim.errors import UserError
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.config import EngineConfig, kv_capacity_tokens
from blendsim.sim.simulation.run import simulate
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)


def toy_trace(n: int = 600, groups: int = 12, seed: int = 0) -> Trace:
    """A system prompt, a per-group shared prefix and a unique question; mixed output lengths."""
    rng = np.random.default_rng(seed)
    reqs = []
    for i in range(n):
        g = int(rng.integers(groups))
        long = rng.random() < 0.05
        out = int(rng.integers(500, 3000)) if long else int(rng.integers(1, 60))
        reqs.append(
            Request(i, "toy", (1, 100 + g, 10_000 + i), (40, 200 + 10 * g, int(rng.integers(5, 300))), out)
        )
    return Trace.from_requests(reqs)


def hand_plan(trace: Trace, order: np.ndarray, policy: str = "fifo") -> Plan:
    n = len(trace)
    one = np.zeros(1)
    return Plan(
        policy,
        np.asarray(order, dtype=np.int64),
        np.array([0, n], dtype=np.int64),
        one,
        one,
        one,
        one,
        trace.output_len.copy(),
    )


def dfs_order(trace: Trace) -> np.ndarray:
    return np.lexsort((np.arange(len(trace)), [trace.segments_of(i)[0][1] for i in range(len(trace))]))


def small(tokens: int, **kw: object) -> EngineConfig:
    return EngineConfig(kv_capacity_override=tokens, **kw)


@pytest.mark.parametrize("admission", ["expected", "final"])
def test_kv_never_exceeds_capacity_and_every_request_finishes(admission: str) -> None:
    tr = toy_trace()
    cap = 12_000
    res = simulate(tr, hand_plan(tr, np.arange(len(tr))), LLAMA, A100, small(cap, admission=admission))
    assert res.steps["kv_used_tokens"].max() <= cap
    assert res.steps["kv_used_tokens"].max() > cap // 2  # the cache was actually under pressure
    # simulate() raises unless each request finished once with exactly its output length
    assert res.requests == len(tr) and res.makespan_s > 0
    if admission == "expected":
        assert res.preemptions > 0  # tight memory: the safety net was exercised


def test_tokens_are_conserved() -> None:
    tr = toy_trace()
    res = simulate(tr, hand_plan(tr, np.arange(len(tr))), LLAMA, A100, small(12_000))
    saved = res.sharing * res.total_tokens
    prefill = int(res.steps["prefill_tokens"].sum())
    assert prefill == pytest.approx(tr.prompt_len.sum() - saved + res.extra["recomputed_tokens"])
    # every output token is sampled once: by a decode step or by the prefill that ends a prompt
    assert int(res.steps["decode_tokens"].sum()) + res.extra["prefill_completions"] == tr.output_len.sum()
    assert res.total_tokens == tr.prompt_len.sum() + tr.output_len.sum()


def test_dfs_with_large_cache_reaches_optimal_sharing() -> None:
    tr = toy_trace()  # no prompt is wholly another's prefix, so the last-token rule costs nothing
    res = simulate(tr, hand_plan(tr, dfs_order(tr), "dfs"), LLAMA, A100, EngineConfig(block_size=1))
    assert res.optimal_sharing > 0.3
    assert res.sharing == pytest.approx(res.optimal_sharing, abs=1e-12)
    assert res.preemptions == 0
    # 16-token blocks: hits end at block boundaries, so the segments' unaligned tails are recomputed
    blocks = simulate(tr, hand_plan(tr, dfs_order(tr), "dfs"), LLAMA, A100, EngineConfig(block_size=16))
    assert blocks.optimal_sharing == res.optimal_sharing  # the trace's (paper's) sharing, unchanged
    assert 0.9 * res.sharing < blocks.sharing < res.sharing


def test_random_order_under_pressure_loses_sharing() -> None:
    tr = toy_trace(groups=60)
    rnd = np.random.default_rng(1).permutation(len(tr))
    dfs = simulate(tr, hand_plan(tr, dfs_order(tr)), LLAMA, A100, small(8_000))
    bal = simulate(tr, hand_plan(tr, rnd), LLAMA, A100, small(8_000))
    assert bal.sharing < dfs.sharing


def test_same_inputs_same_results() -> None:
    tr = toy_trace()
    a = simulate(tr, hand_plan(tr, np.arange(len(tr))), LLAMA, A100, small(12_000))
    b = simulate(tr, hand_plan(tr, np.arange(len(tr))), LLAMA, A100, small(12_000))
    da, db = a.to_dict(), b.to_dict()
    da.pop("sim_s"), db.pop("sim_s")
    assert da == db
    for k in a.steps:
        assert np.array_equal(a.steps[k], b.steps[k])


def test_overlap_never_slower_than_serial() -> None:
    tr = toy_trace()
    plan = hand_plan(tr, dfs_order(tr))
    over = simulate(tr, plan, LLAMA, A100, EngineConfig(engine="overlap"))
    ser = simulate(tr, plan, LLAMA, A100, EngineConfig(engine="serial"))
    assert over.makespan_s <= ser.makespan_s
    assert over.fraction_of_optimal <= 1.0 and ser.fraction_of_optimal <= 1.0


def test_default_capacity_is_the_papers_60_gb() -> None:
    cfg = EngineConfig()
    tokens = kv_capacity_tokens(80e9, LLAMA.weight_bytes, LLAMA.kv_bytes_per_token, cfg)
    assert tokens * LLAMA.kv_bytes_per_token == pytest.approx(60e9, rel=1e-3)


def test_request_larger_than_kv_is_a_user_error_naming_it() -> None:
    reqs = [Request(7, "a", (1,), (100,), 10), Request(42, "a", (2,), (100,), 5000)]
    tr = Trace.from_requests(reqs)
    with pytest.raises(UserError, match="request 42"):
        simulate(tr, hand_plan(tr, np.arange(2)), LLAMA, A100, small(2_000))


def test_profile_of_another_model_is_a_user_error() -> None:
    tr = toy_trace(n=20)
    other = dataclasses.replace(builtin_profile("a100-80g"), model="qwen-2.5-7b")
    with pytest.raises(UserError, match="qwen-2.5-7b"):
        simulate(tr, hand_plan(tr, np.arange(len(tr))), LLAMA, other)


def test_data_parallel_splits_the_work() -> None:
    tr = toy_trace()
    plan = hand_plan(tr, np.arange(len(tr)))
    one = simulate(tr, plan, LLAMA, A100)
    two = simulate(tr, plan, LLAMA, A100, dp=2)
    assert set(np.unique(two.steps["replica"])) == {0, 1}
    assert two.makespan_s < one.makespan_s
    assert sorted(two.admission["position"].tolist()) == list(range(len(tr)))


@pytest.mark.parametrize("engine", ["overlap", "serial"])
def test_time_breakdown_adds_up_and_bounds_the_run(engine: str) -> None:
    tr = toy_trace()
    # block_size 1: token-granular hits, so DFS with this cache does exactly the optimum's work
    res = simulate(
        tr, hand_plan(tr, dfs_order(tr), "dfs"), LLAMA, A100, EngineConfig(engine=engine, block_size=1)
    )
    b = res.to_dict()["breakdown"]
    parts = b["compute_led_s"] + b["memory_led_s"] + b["interference_s"] + b["overhead_s"]
    assert parts == pytest.approx(res.makespan_s, rel=1e-9)
    assert b["compute_s"] == pytest.approx(res.steps["compute_s"].sum())
    # the work is the optimum's (DFS, cache large enough; chunked prompts add a few LM-head rows)
    assert b["lost_work_s"] == pytest.approx(0.0, abs=1e-4 * b["optimal_compute_s"])
    assert b["compute_s"] == pytest.approx(b["work_compute_s"] + b["gemm_fixed_s"] + b["weight_bound_s"])
    assert b["gemm_fixed_s"] > 0 and b["weight_bound_s"] >= -1e-9 and b["overhead_s"] > 0
    assert b["critical_path_steps"] == int(tr.output_len.max())
    assert res.optimal_time_s <= b["step_bound_s"] <= res.makespan_s
    assert b["critical_path_s"] <= res.makespan_s
    assert 0 < b["compute_busy"] <= 1 and 0 < b["memory_busy"] <= 1
