"""Policies, make_plan, length estimation and the ``blendsim plan`` verb."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from plan_helpers import GPU, MODEL, outlier_trace, random_traces

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.options import FieldError
from blendsim.sim.planning.estimate import EstimationConfig, estimate_output_lengths
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.planning.policies import ORDERS, get_policy
from blendsim.sim.planning.policies.base import unbounded_cache_saved
from blendsim.sim.planning.tree import PrefixTree
from blendsim.traces.trace import Trace

ORACLE = EstimationConfig("oracle")


@settings(max_examples=30, deadline=None)
@given(random_traces())
def test_every_policy_order_is_a_permutation(trace: Trace) -> None:
    for policy in ORDERS:
        plan = make_plan(trace, policy, MODEL, GPU, seed=3)
        plan.validate(len(trace))
        assert plan.est_output_len.shape == (len(trace),)
        assert np.all(plan.unit_mem > 0) and np.all(np.isfinite(plan.unit_density))


@settings(max_examples=30, deadline=None)
@given(random_traces())
def test_dfs_with_an_unbounded_cache_reaches_the_optimal_sharing(trace: Trace) -> None:
    plan = make_plan(trace, "dfs", MODEL, GPU)
    assert unbounded_cache_saved(trace, plan.order) == trace.saved_tokens()
    assert plan.stats["sharing_kept"] == 1.0


@settings(max_examples=30, deadline=None)
@given(random_traces())
def test_blend_units_partition_the_requests_and_keep_their_memory(trace: Trace) -> None:
    plan = make_plan(trace, "blend", MODEL, GPU, estimation=ORACLE, keep_sharing=0.5)
    tree = PrefixTree.from_trace(trace)
    tree.set_lengths(trace.output_len, MODEL, GPU)
    for k in range(plan.num_units):
        assert plan.unit_mem[k] == pytest.approx(tree.leaf_mem[plan.unit(k)].sum())
        assert plan.unit_output[k] == pytest.approx(trace.output_len[plan.unit(k)].mean())
    assert 0.5 <= plan.stats["sharing_kept"] <= 1.0


def test_dfs_groups_prefixes_in_insertion_order() -> None:
    trace = outlier_trace(n_short=3)
    plan = make_plan(trace.subset(np.array([4, 0, 5, 1, 6, 2, 3])), "dfs", MODEL, GPU)
    assert list(plan.order) == [0, 2, 4, 1, 3, 5, 6]  # video group first: it arrived first


def test_fifo_and_balance() -> None:
    trace = outlier_trace()
    assert list(make_plan(trace, "fifo", MODEL, GPU).order) == list(range(len(trace)))
    a = make_plan(trace, "balance", MODEL, GPU, seed=1).order
    assert np.array_equal(a, make_plan(trace, "balance", MODEL, GPU, seed=1).order)
    assert not np.array_equal(a, make_plan(trace, "balance", MODEL, GPU, seed=2).order)


def test_blend_puts_compute_heavy_left_and_splits_the_outlier() -> None:
    trace = outlier_trace()
    plan = make_plan(trace, "blend", MODEL, GPU, estimation=ORACLE, keep_sharing=0.9)
    rho = plan.unit_density
    assert plan.two_sided and rho[0] > plan.target_density > rho[-1]
    assert plan.stats["leaves_split"] == 1 and plan.stats["leaf_split_fraction"] == pytest.approx(1 / 24)
    outlier_unit = [k for k in range(plan.num_units) if 20 in plan.unit(k)][0]
    assert rho[outlier_unit] < plan.target_density  # moved to the memory-heavy end
    assert plan.stats["sharing_kept"] == pytest.approx((1020 - 50) / 1020)  # 20 x 50 + 2 x 10 saved


def test_unknown_policy_and_options_are_user_errors() -> None:
    trace = outlier_trace()
    with pytest.raises(UserError, match="unknown policy"):
        get_policy("lifo")
    with pytest.raises(UserError, match="takes no options"):
        make_plan(trace, "dfs", MODEL, GPU, keep_sharing=0.9)
    with pytest.raises(UserError, match="unknown blend option"):
        make_plan(trace, "blend", MODEL, GPU, keep=0.9)


def test_sampled_estimates_fall_back_to_the_nearest_sampled_subtree() -> None:
    trace = outlier_trace()
    tree = PrefixTree.from_trace(trace)
    est = estimate_output_lengths(
        tree,
        trace.output_len,
        EstimationConfig(sample_rate=1e-9, video_lengths="sampled"),
        seed=0,
        min_per_source=1,
        sources=trace.sources,
        source_codes=trace.source_codes,
    )
    api = np.arange(21)
    sampled = np.flatnonzero(est.sampled[api])
    assert len(sampled) == 1  # one per source, nothing else at this rate
    others = np.setdiff1d(api, sampled)
    assert np.all(est.lengths[others] == trace.output_len[sampled[0]])  # siblings' sample mean
    again = estimate_output_lengths(
        tree,
        trace.output_len,
        EstimationConfig(sample_rate=1e-9, video_lengths="sampled"),
        seed=0,
        sources=trace.sources,
        source_codes=trace.source_codes,
    )
    assert np.array_equal(est.lengths, again.lengths)  # deterministic


def test_oracle_noise_and_exact_video_lengths() -> None:
    from blendsim.traces.request import Request

    trace = Trace.from_requests(
        [
            Request(i, "openvid" if i < 5 else "burstgpt", (i % 2, 10 + i), (5, 20), 1000 * (i + 1))
            for i in range(40)
        ]
    )
    tree = PrefixTree.from_trace(trace)
    exact = estimate_output_lengths(
        tree, trace.output_len, sources=trace.sources, source_codes=trace.source_codes
    )
    assert np.array_equal(exact.lengths[:5], trace.output_len[:5])  # video lengths are deterministic
    sampled = EstimationConfig(video_lengths="sampled")
    guessed = estimate_output_lengths(
        tree, trace.output_len, sampled, sources=trace.sources, source_codes=trace.source_codes
    )
    videos = ~guessed.sampled[:5]
    assert videos.any() and not np.array_equal(guessed.lengths[:5][videos], trace.output_len[:5][videos])
    oracle = estimate_output_lengths(tree, trace.output_len, ORACLE)
    assert np.array_equal(oracle.lengths, trace.output_len)
    noisy = estimate_output_lengths(
        tree, trace.output_len, EstimationConfig("oracle", length_noise=0.5), seed=1
    )
    ratio = noisy.lengths / trace.output_len
    assert (
        np.std(np.log(ratio)) == pytest.approx(0.5, rel=0.4)
        and noisy.mean_abs_rel_error(trace.output_len) > 0
    )
    with pytest.raises(FieldError, match="sample_rate"):
        EstimationConfig(sample_rate=0.0)
    with pytest.raises(FieldError, match="estimator"):
        EstimationConfig(estimator="psychic")
    with pytest.raises(FieldError, match="length_noise"):
        EstimationConfig(length_noise=float("nan"))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["trace1", "trace2", "trace3", "trace4"])
def test_blend_on_table_2_presets_keeps_sharing_and_splits_few_leaves(preset: str) -> None:
    from blendsim.traces.mixer import make_preset

    trace = make_preset(preset)
    for estimator in ("sampled", "oracle"):
        plan = make_plan(trace, "blend", MODEL, GPU, estimation=EstimationConfig(estimator))
        plan.validate(len(trace))
        assert plan.stats["sharing_kept"] >= 0.97
        assert plan.stats["leaf_split_fraction"] <= 0.01
        assert plan.unit_density[0] > plan.target_density > plan.unit_density[-1]


def test_plan_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "order.csv"
    assert (
        main(
            [
                "plan",
                "trace4",
                "--requests",
                "10000",
                "--policy",
                "blend",
                "--json",
                "--order-out",
                str(out),
                "--estimator",
                "oracle",
            ]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["requests"] == 10000 and info["policy"] == "blend" and 0.97 <= info["sharing_kept"] <= 1
    rows = out.read_text().splitlines()
    assert rows[0] == "rank,request_id,position,unit,side" and len(rows) == 10001
    positions = sorted(int(r.split(",")[2]) for r in rows[1:])
    assert positions == list(range(10000)) and {r.split(",")[4] for r in rows[1:]} == {"L", "R"}
    assert main(["plan", "trace4", "--requests", "10000", "--policy", "dfs"]) == 0
    assert "sharing kept" in capsys.readouterr().out
    assert main(["plan", "no-such-trace", "--policy", "dfs"]) == 2
    assert "neither a file nor a preset" in capsys.readouterr().err


def test_dfs_tuned_puts_long_outputs_first_and_spreads_the_prefill() -> None:
    from blendsim.profiler.profile import builtin_profile
    from blendsim.sim.planning.policies.dfs_tuned import LONG_OUTPUT, SPAN
    from blendsim.sim.simulation.run import simulate
    from blendsim.traces.mixer import make_preset

    trace = make_preset("trace1", requests=800, seed=5)
    plan = make_plan(trace, "dfs-tuned", MODEL, GPU, estimation=ORACLE)
    plan.validate(len(trace))
    long = trace.output_len[plan.order] >= LONG_OUTPUT
    assert long.any() and not long[np.argmin(long) :].any()  # every long output before every short one
    dfs = make_plan(trace, "dfs", MODEL, GPU, estimation=ORACLE).order
    assert np.array_equal(plan.order[~long], dfs[trace.output_len[dfs] < LONG_OUTPUT])  # DFS otherwise
    work = trace.prompt_len.sum() - trace.saved_tokens()
    assert plan.prefill_cap == int(np.ceil(SPAN * work / trace.output_len.max()))
    assert plan.stats["sharing_kept"] == 1.0
    res = simulate(trace, plan, MODEL, builtin_profile("a100-80g").bind(MODEL))
    assert 0 < res.steps["prefill_tokens"].max() <= plan.prefill_cap
    off = make_plan(trace, "dfs-tuned", MODEL, GPU, estimation=ORACLE, long_output=None, span=None)
    assert np.array_equal(off.order, dfs) and off.prefill_cap is None
    with pytest.raises(UserError, match="long_output and span"):
        make_plan(trace, "dfs-tuned", MODEL, GPU, budget=3)
