"""``auto``: on the simulated number it is never worse than the best of its candidates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.profiler.gpus import GPUS
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.planning.policies import ONE_SIDED, ORDERS, parse_policies
from blendsim.sim.planning.policies.auto import RankingRun
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.layout import DisaggConfig
from blendsim.sim.simulation.run import simulate, simulate_policy
from blendsim.traces.io import write_trace
from blendsim.traces.mixer import make_preset
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)


def _traces() -> dict[str, Trace]:
    traces = {p: make_preset(p, requests=500, seed=11) for p in ("trace1", "trace2", "trace3", "trace4")}
    traces["one request"] = make_preset("trace1", requests=200, seed=11).subset(np.arange(1))
    # long shared prompts, short outputs: little memory-heavy work to blend with
    rng = np.random.default_rng(11)
    traces["long prompts"] = Trace.from_requests(
        [
            Request(i, "toy", (i % 4, 4 + i), (3000, int(rng.integers(200, 800))), int(rng.integers(4, 40)))
            for i in range(300)
        ]
    )
    traces["one huge request"] = Trace.from_requests([Request(0, "toy", (0,), (30_000,), 2_000)])
    return traces


TRACES = _traces()


def _check_never_worse(trace: Trace, config: EngineConfig, estimation: EstimationConfig) -> None:
    auto = simulate_policy(trace, "auto", LLAMA, A100, config, seed=3, estimation=estimation)
    each = {
        p: simulate_policy(trace, p, LLAMA, A100, config, seed=3, estimation=estimation).throughput_tok_s
        for p in ORDERS
    }
    assert auto.policy == "auto"
    assert auto.throughput_tok_s >= max(each.values())
    ranked = auto.extra["auto"]["candidates"]
    assert [c["policy"] for c in ranked] == sorted(each, key=lambda p: -each[p])
    assert ranked[0]["policy"] == auto.extra["auto"]["chosen"]
    assert auto.extra["auto"]["margin"] >= 1.0


@pytest.mark.parametrize("name", list(TRACES))
def test_auto_is_never_worse_than_its_best_candidate(name: str) -> None:
    _check_never_worse(TRACES[name], EngineConfig(), EstimationConfig())


@pytest.mark.parametrize("engine", ["overlap", "serial"])
def test_auto_under_noisy_sampled_lengths(engine: str) -> None:
    estimation = EstimationConfig(length_noise=0.5, video_lengths="sampled")
    _check_never_worse(TRACES["trace2"], EngineConfig(engine=engine), estimation)


def test_the_auto_plan_simulates_to_what_it_predicted() -> None:
    """The plan path (``plan``, the executor) and the direct one agree: a plan's run is deterministic."""
    trace = TRACES["trace1"]
    run = RankingRun(A100, EngineConfig(engine="serial"), dp=2)
    plan = make_plan(trace, "auto", LLAMA, GPUS["a100-80g"], run=run)
    again = simulate(trace, plan, LLAMA, A100, run.config, run.dp)
    assert plan.policy == "auto" and again.policy == "auto"
    assert again.throughput_tok_s == plan.stats["auto"]["candidates"][0]["throughput_tok_s"]
    assert again.extra["auto"]["chosen"] == plan.stats["auto"]["chosen"]
    with pytest.raises(UserError, match="needs the run"):
        make_plan(trace, "auto", LLAMA, GPUS["a100-80g"])
    with pytest.raises(UserError, match="candidate"):
        make_plan(trace, "auto", LLAMA, GPUS["a100-80g"], run=run, candidates=["auto"])


def test_auto_under_disaggregation_ranks_the_one_sided_orders() -> None:
    trace = TRACES["trace2"]
    res = simulate_policy(trace, "auto", LLAMA, A100, EngineConfig(engine="serial"), disagg=DisaggConfig())
    assert {c["policy"] for c in res.extra["auto"]["candidates"]} == set(ONE_SIDED)
    assert res.layout == "1P1D"
    with pytest.raises(UserError, match="blend"):
        simulate_policy(trace, "auto", LLAMA, A100, disagg=DisaggConfig(), candidates=["dfs", "blend"])


def test_cli_prints_the_ranking(tmp_path, capsys) -> None:
    assert "auto" not in parse_policies("all")
    path = tmp_path / "t.parquet"
    write_trace(TRACES["trace1"], path)
    assert main(["simulate", str(path), "--policy", "auto,dfs"]) == 0
    out = capsys.readouterr().out
    assert "auto chose " in out and "tok/s by candidate: " in out
    assert main(["simulate", str(path), "--policy", "auto", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["policy"] == "auto" and len(row["auto"]["candidates"]) == len(ORDERS)
    assert main(["plan", str(path), "--policy", "auto"]) == 0
    assert "auto chose " in capsys.readouterr().out


def test_large_runs_pick_finalists_on_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above SAMPLE_ABOVE requests every candidate runs on a sample and only the FINALISTS fastest
    there run in full; the winner is the best of those full runs."""
    from blendsim.sim.planning.policies import auto as auto_policy

    monkeypatch.setattr(auto_policy, "SAMPLE_ABOVE", 300)
    trace = make_preset("trace2", requests=600, seed=11)
    res = simulate_policy(trace, "auto", LLAMA, A100, seed=3, sample=200)
    summary = res.extra["auto"]
    sampled = summary["sampled"]
    assert sampled["requests"] == 200
    assert {c["policy"] for c in sampled["candidates"]} == set(ORDERS)
    finalists = [c["policy"] for c in sampled["candidates"][: auto_policy.FINALISTS]]
    assert {c["policy"] for c in summary["candidates"]} == set(finalists)
    full = {p: simulate_policy(trace, p, LLAMA, A100, seed=3).throughput_tok_s for p in finalists}
    assert res.throughput_tok_s == max(full.values())
    assert summary["chosen"] == max(full, key=lambda p: full[p])
    unsampled = simulate_policy(trace, "auto", LLAMA, A100, seed=3, sample=None).extra["auto"]
    assert "sampled" not in unsampled and len(unsampled["candidates"]) == len(ORDERS)
