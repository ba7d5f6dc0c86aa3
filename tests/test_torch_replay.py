"""The simulator's step record and its torch step replay on a tiny 2-layer model (CPU, seconds)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from blendsim.errors import UserError
from blendsim.executor.recorded_steps import select_rows, step_shape
from blendsim.executor.torch_backend import ReplayOptions, ReplayResult, replay_steps
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.forward_pass import StepReplayer, StepTiming, decode_batch, prefill_chunks
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.run import simulate
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

CONFIG = EngineConfig(
    engine="serial", token_budget=256, max_running=16, block_size=16, kv_capacity_override=4096
)


def replay_policy(
    trace: Trace,
    policy: str,
    model: ModelSpec,
    profile: object,
    config: EngineConfig,
    opts: ReplayOptions,
    dp: int = 1,
) -> ReplayResult:
    """Plan, simulate and replay one policy (the pipeline's steps, without a comparison)."""
    bound = profile.bind(model)  # type: ignore[attr-defined]
    sim = simulate(trace, make_plan(trace, policy, model, bound.hardware), model, bound, config, dp)
    return replay_steps(sim, model, bound, opts)


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


def test_the_step_record_rebuilds_every_step(tiny: ModelSpec) -> None:
    """Each recorded step's shape is what the simulator priced (its time comes out again, exactly), its
    chunks add up to its prefill tokens and attention pairs, and the totals are the trace's work."""
    trace, profile = small_trace(), builtin_profile("a100-80g").bind(tiny)
    for policy, dp in (("fifo", 1), ("dfs", 2), ("blend", 1)):
        res = simulate(trace, make_plan(trace, policy, tiny, profile.hardware), tiny, profile, CONFIG, dp)
        s, c = res.steps, res.chunks
        for row in range(len(s["step"])):
            assert profile.step_time(step_shape(s, row), "serial").total_s == s["step_s"][row]
        key = c["replica"].astype(np.int64) * 10**6 + c["step"]
        step_key = s["replica"].astype(np.int64) * 10**6 + s["step"]
        idx = np.searchsorted(step_key, key)
        assert np.array_equal(step_key[idx], key)  # every chunk belongs to a recorded step
        tokens = np.bincount(idx, weights=c["tokens"], minlength=len(step_key))
        pairs = np.bincount(
            idx,
            weights=c["tokens"] * c["context"] + c["tokens"] * (c["tokens"] + 1) / 2,
            minlength=len(step_key),
        )
        assert np.array_equal(tokens, s["prefill_tokens"])
        assert np.allclose(pairs, s["prefill_attn_pairs"], rtol=1e-12)
        assert np.array_equal(np.bincount(idx, minlength=len(step_key)), s["prefill_seqs"])
        # GEMM tokens of all steps = prompt tokens not served by the cache + decodes (d - 1 each)
        computed = int(s["prefill_tokens"].sum() + s["decode_tokens"].sum())
        saved = int(res.sharing * res.total_tokens)
        assert computed == trace.prompt_len.sum() - saved + (trace.output_len - 1).sum()
        assert sorted(np.unique(s["replica"]).tolist()) == list(range(dp))


def test_every_replayed_step_is_timed(tiny: ModelSpec, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    res = replay_policy(
        small_trace(), "fifo", tiny, builtin_profile("a100-80g"), CONFIG, ReplayOptions(warmup=1, threads=1)
    )
    assert res.complete and len(res.rows) == len(res.sim.steps["step"]) > 10
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
    paths = res.write(tmp_path / "out")
    assert json.loads(Path(paths[0]).read_text())["steps"] == len(res.rows)
    import pyarrow.parquet as pq

    table = pq.read_table(paths[1])
    assert table.num_rows == len(res.rows) and {"pred_step_s", "meas_gemm_s", "step_s"} <= set(
        table.column_names
    )


def test_max_steps_and_selection(tiny: ModelSpec) -> None:
    trace, profile = small_trace(), builtin_profile("a100-80g").bind(tiny)
    sim = simulate(trace, make_plan(trace, "fifo", tiny, profile.hardware), tiny, profile, CONFIG, 2)
    first = select_rows(sim.steps, 3, "first")
    even = select_rows(sim.steps, 3, "even")
    for rows in (first, even):
        assert len(rows) == 6 and [int(np.sum(sim.steps["replica"][rows] == r)) for r in (0, 1)] == [3, 3]
    assert sim.steps["step"][even].max() > 3
    res = replay_policy(trace, "fifo", tiny, profile, CONFIG, ReplayOptions(max_steps=4, warmup=0), dp=2)
    assert len(res.rows) == 8 and not res.complete
    c = res.sim.steps
    assert res.tokens == int(c["prefill_tokens"][res.rows].sum() + c["decode_tokens"][res.rows].sum())


def test_interrupted_replay_keeps_what_it_measured(tiny: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    real = StepReplayer.run
    calls = {"n": 0}

    def flaky(
        self: StepReplayer, shape: BatchShape, engine: str = "serial", split: bool = True
    ) -> StepTiming:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(self, shape, engine, split)

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
