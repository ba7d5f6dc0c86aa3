"""The admission record the executor replays: when (step, time) each request was first admitted."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from blendsim.profiler.gpus import GPUS
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.result import SimResult
from blendsim.sim.simulation.run import simulate
from blendsim.traces.mixer import make_preset

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)


@pytest.fixture(scope="module")
def trace():
    return make_preset("trace2", requests=1500)


def check_record(res: SimResult, n: int) -> None:
    adm, s = res.admission, res.steps
    assert sorted(adm["position"].tolist()) == list(range(n))  # every request, once
    assert {"step", "time", "replica", "side", "cached_tokens"} <= set(adm)
    for r in np.unique(adm["replica"]).tolist():
        mine = adm["replica"] == r
        step, at = adm["step"][mine], adm["time"][mine]
        assert np.all(np.diff(step) >= 0)  # non-decreasing along the admission order
        n_steps = int(np.sum(s["replica"] == r))
        assert step.min() >= 1 and step.max() <= n_steps
        # the admission time is the start of that step: the end of the previous one (0 for step 1)
        ends = np.concatenate([[0.0], s["time"][s["replica"] == r]])
        assert np.array_equal(at, ends[step - 1])


@pytest.mark.parametrize("policy", ["fifo", "blend"])
def test_admission_steps_are_recorded_for_every_request(trace, policy: str) -> None:
    plan = make_plan(trace, policy, LLAMA, GPUS["a100-80g"])
    res = simulate(trace, plan, LLAMA, A100, EngineConfig(kv_capacity_override=120_000))
    check_record(res, len(trace))
    adm = res.admission
    assert adm["step"][-1] > adm["step"][0]  # admissions spread over the run (memory is tight)
    release = res.release_steps()
    assert release is not None and np.array_equal(release, adm["step"] - 1) and release[0] == 0


def test_admission_record_per_replica_and_in_the_parquet(trace, tmp_path) -> None:
    plan = make_plan(trace, "blend", LLAMA, GPUS["a100-80g"])
    res = simulate(trace, plan, LLAMA, A100, dp=2)
    check_record(res, len(trace))
    assert set(np.unique(res.admission["replica"])) == {0, 1}
    assert res.release_steps() is None  # two replicas: no single-engine replay timing
    for r in (0, 1):  # but each replica's own engine has one
        mine = res.admission["replica"] == r
        release = res.release_steps(r)
        assert release is not None and np.array_equal(release, res.admission["step"][mine] - 1)
        caps = res.prefill_caps(r)
        assert caps is not None and len(caps) == int(np.sum(res.steps["replica"] == r))
    paths = res.write(tmp_path)
    table = pq.read_table(paths[3]).to_pandas()
    assert list(table.columns) == ["position", "side", "replica", "step", "time", "cached_tokens"]
    assert np.array_equal(table["step"].to_numpy(), res.admission["step"])


@pytest.mark.parametrize("chunk_pacing", [True, False])
def test_prefill_caps_are_the_steps_actual_limits(trace, chunk_pacing: bool) -> None:
    """``prefill_cap`` records blend's chunk pacing step by step; every step kept within its cap."""
    plan = make_plan(trace, "blend", LLAMA, GPUS["a100-80g"])
    config = EngineConfig(kv_capacity_override=120_000, blend_chunk_pacing=chunk_pacing)
    res = simulate(trace, plan, LLAMA, A100, config)
    caps, prefill = res.steps["prefill_cap"], res.steps["prefill_tokens"]
    assert caps.dtype == np.int64 and len(caps) == res.steps_run and np.all(caps >= -1)
    capped = caps >= 0
    assert np.all(prefill[capped] <= caps[capped])
    if chunk_pacing:
        assert capped.any() and np.any(prefill[capped] == caps[capped])  # the caps bind
        assert np.array_equal(res.prefill_caps(), caps)
    else:
        assert not capped.any() and res.prefill_caps() is None
    fifo = simulate(trace, make_plan(trace, "fifo", LLAMA, GPUS["a100-80g"]), LLAMA, A100, config)
    assert np.all(fifo.steps["prefill_cap"] == -1) and fifo.prefill_caps() is None
