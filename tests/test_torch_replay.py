"""Step capture and torch step replay on a tiny 2-layer model (CPU, seconds)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from blendsim.errors import UserError
from blendsim.executor.step_capture import CapturingProfile, simulate_captured
from blendsim.executor.torch_backend import ReplayOptions, replay_policy, select_rows
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.forward_pass import StepReplayer, StepTiming, decode_batch, prefill_chunks
from blendsim.profiler.profile import builtin_profile
from blendsim.profiler.specs import ModelSpec, model_from_config
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.run import simulate
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

CONFIG = EngineConfig(
    engine="serial", token_budget=256, max_running=16, block_size=16, kv_capacity_override=4096
)


@pytest.fixture(scope="module")
def tiny() -> ModelSpec:
    import tempfile

    d = Path(tempfile.mkdtemp())
    (d / "config.json").write_text(
        json.dumps(
            {
                "_name_or_path": "tiny-2l",
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 512,
                "tie_word_embeddings": True,
            }
        )
    )
    return model_from_config(d / "config.json")


def small_trace(n: int = 24) -> Trace:
    rng = np.random.default_rng(1)
    reqs = [
        Request(
            i,
            f"s{i % 2}",
            (i % 2, 100 + i),
            (40 + 20 * (i % 2), int(rng.integers(5, 120))),
            int(rng.integers(1, 40)),
        )
        for i in range(n)
    ]
    return Trace.from_requests(reqs)


@pytest.mark.parametrize(
    ("tokens", "seqs", "pairs"),
    [(1, 1, 1.0), (10, 3, 200.0), (300, 4, 45_150.0 + 300 * 77), (7, 9, 40.0), (0, 2, 0.0)],
)
def test_prefill_chunks_keep_tokens_and_pairs(tokens: int, seqs: int, pairs: float) -> None:
    chunks = prefill_chunks(tokens, pairs, seqs)
    assert sum(q for q, _ in chunks) == tokens
    assert len(chunks) == min(tokens, seqs)
    assert all(c >= 0 for _, c in chunks)
    got = sum(q * c + q * (q + 1) / 2 for q, c in chunks)
    assert got == pytest.approx(pairs, abs=tokens / 2 + 1e-9)  # ctx is rounded to whole tokens


def test_decode_batch_keeps_the_total_kv() -> None:
    assert decode_batch(4, 1000) == (4, 250)
    assert decode_batch(0, 0) == (0, 0)
    assert decode_batch(3, 1) == (3, 1)


def test_capture_is_transparent_and_exact(tiny: ModelSpec) -> None:
    trace, profile = small_trace(), builtin_profile("a100-80g").bind(tiny)
    for policy, dp in (("fifo", 1), ("dfs", 2), ("blend", 1)):
        plan = make_plan(trace, policy, tiny, profile.hardware)
        plain = simulate(trace, plan, tiny, profile, CONFIG, dp)
        res, cap = simulate_captured(trace, plan, tiny, profile, CONFIG, dp)
        assert res.makespan_s == plain.makespan_s and res.steps_run == plain.steps_run
        assert len(cap) == len(res.steps["step"])
        c = cap.columns
        assert np.array_equal(c["replica"], res.steps["replica"]) and np.array_equal(
            c["step"], res.steps["step"]
        )
        assert np.array_equal(c["prefill_tokens"], res.steps["prefill_tokens"])
        assert np.array_equal(c["decode_seqs"], res.steps["decode_tokens"])
        assert np.array_equal(c["pred_step_s"], res.steps["step_s"])
        assert cap.replicas == list(range(dp))
        # GEMM tokens of all steps = prompt tokens not served by the cache + decodes (d - 1 each)
        computed = int(c["prefill_tokens"].sum() + c["decode_seqs"].sum())
        saved = int(res.sharing * res.total_tokens)
        assert computed == trace.prompt_len.sum() - saved + (trace.output_len - 1).sum()
        for row in range(len(cap)):  # the logged shape reproduces the prediction
            assert profile.step_time(cap.shape(row), "serial").total_s == c["pred_step_s"][row]


def test_capturing_profile_survives_rebinding(tiny: ModelSpec) -> None:
    cp = CapturingProfile.wrap(builtin_profile("a100-80g"))
    bound = cp.bind(tiny)
    assert isinstance(bound, CapturingProfile) and bound.log is cp.log
    bound.step_time(BatchShape(8, 36.0, 2, 100, 1), "serial")
    assert len(cp.log) == 1


def test_every_replayed_step_is_timed(tiny: ModelSpec, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    res = replay_policy(
        small_trace(), "fifo", tiny, builtin_profile("a100-80g"), CONFIG, ReplayOptions(warmup=1, threads=1)
    )
    assert res.complete and len(res.rows) == len(res.captured) > 10
    m = res.measured
    assert np.all(m["step_s"] > 0) and np.all(np.isfinite(m["step_s"]))
    ops = m["gemm_s"] + m["decode_attn_s"] + m["prefill_attn_s"] + m["head_s"]
    assert np.all(ops <= m["step_s"] * (1 + 1e-9))
    assert np.all(m["gemm_s"] > 0)
    d = res.to_dict()
    assert d["backend"] == "torch" and d["total_tokens"] == res.sim.total_tokens
    assert d["makespan_s"] == pytest.approx(m["step_s"].sum())
    assert d["simulated_makespan_s"] == pytest.approx(res.sim.makespan_s)
    assert d["step_mape"] == pytest.approx(np.mean(np.abs(res.predicted - m["step_s"]) / m["step_s"]))
    paths = res.write(str(tmp_path / "out"))
    assert json.loads(Path(paths[0]).read_text())["steps"] == len(res.rows)
    import pyarrow.parquet as pq

    table = pq.read_table(paths[1])
    assert table.num_rows == len(res.rows) and {"pred_step_s", "meas_gemm_s", "step_s"} <= set(
        table.column_names
    )


def test_max_steps_and_selection(tiny: ModelSpec) -> None:
    trace, profile = small_trace(), builtin_profile("a100-80g").bind(tiny)
    _, cap = simulate_captured(
        trace, make_plan(trace, "fifo", tiny, profile.hardware), tiny, profile, CONFIG, 2
    )
    first = select_rows(cap, 3, "first")
    even = select_rows(cap, 3, "even")
    for rows in (first, even):
        assert len(rows) == 6 and [int(np.sum(cap.columns["replica"][rows] == r)) for r in (0, 1)] == [3, 3]
    assert cap.columns["step"][even].max() > 3
    res = replay_policy(trace, "fifo", tiny, profile, CONFIG, ReplayOptions(max_steps=4, warmup=0), dp=2)
    assert len(res.rows) == 8 and not res.complete
    c = res.captured.columns
    assert res.tokens == int(c["prefill_tokens"][res.rows].sum() + c["decode_seqs"][res.rows].sum())


def test_interrupted_replay_keeps_what_it_measured(tiny: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    real = StepReplayer.run
    calls = {"n": 0}

    def flaky(self: StepReplayer, shape: BatchShape, engine: str = "serial") -> StepTiming:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(self, shape, engine)

    monkeypatch.setattr(StepReplayer, "run", flaky)
    res = replay_policy(
        small_trace(), "fifo", tiny, builtin_profile("a100-80g"), CONFIG, ReplayOptions(warmup=0)
    )
    assert res.interrupted and not res.complete and len(res.rows) == 5
    assert res.to_dict()["interrupted"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_asked_for_but_absent(tiny: ModelSpec) -> None:
    with pytest.raises(UserError, match="no CUDA GPU"):
        replay_policy(
            small_trace(4), "fifo", tiny, builtin_profile("a100-80g"), CONFIG, ReplayOptions(device="cuda")
        )


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_cpu_replayer_pins_glibcs_allocator_thresholds(tiny: ModelSpec) -> None:
    """A CPU replayer keeps large activations on a warm heap (forward_pass docstring, "Allocator")."""
    import ctypes

    from blendsim.profiler import forward_pass

    StepReplayer(tiny, [BatchShape(decode_seqs=1, decode_kv_tokens=8)], "cpu")
    assert forward_pass.steady_cpu_allocator() is True
    # glibc now serves a 16 MiB block from the heap: freeing and re-taking it returns the same address
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    first = libc.malloc(16 * 2**20)
    libc.free(first)
    again = libc.malloc(16 * 2**20)
    libc.free(again)
    assert first == again
