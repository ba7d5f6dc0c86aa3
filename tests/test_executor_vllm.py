"""The vLLM backend on vLLM's CPU build with SmolLM2-135M (skipped, with the reason, without them).

One engine per process: every run here goes through ``run_isolated`` (a subprocess). The trace is
small (12 requests, two shared system prompts) so the whole file takes well under a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from vllm_helpers import NEEDS_VLLM

from blendsim.executor.model_prep import default_model_dir
from blendsim.executor.pacing import Pacing
from blendsim.executor.prompts import block_saved_tokens
from blendsim.executor.vllm_engine import VllmRunConfig
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

pytestmark = NEEDS_VLLM


def _trace() -> Trace:
    reqs = []
    for i in range(12):
        system = 1 if i % 3 else 2  # 300- and 200-token shared prompts
        reqs.append(
            Request(
                i,
                f"s{system}",
                (system, 100 + i),
                (300 if system == 1 else 200, 20 + 7 * i),
                4 + (i * 5) % 23,
            )
        )
    return Trace.from_requests(reqs)


def _config(**kw: object) -> VllmRunConfig:
    base = dict(
        model_dir=str(default_model_dir()),
        kv_cache_gib=1.0,
        max_num_batched_tokens=512,
        max_num_seqs=8,
        waiting_limit=3,
        threads=1,
    )
    base.update(kw)
    return VllmRunConfig(**base)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, Path]:
    from blendsim.traces.io import write_trace

    tr = _trace()
    path = tmp_path_factory.mktemp("trace") / "t.parquet"
    write_trace(tr, path)
    return tr, path


def test_replay_completes_in_order_with_the_traces_sharing(
    trace_file: tuple[Trace, Path], tmp_path: Path
) -> None:
    from blendsim.executor.isolate import run_isolated

    tr, path = trace_file
    order = np.array([5, 0, 3, 11, 1, 2, 4, 6, 7, 8, 9, 10])
    res = run_isolated(path, order, _config(), "fifo", tmp_path)
    assert res["completed"] and res["finished_requests"] == 12 and res["wrong_lengths"] == []
    assert res["admitted_order"] == order.tolist()  # vLLM admitted in the given order
    # nothing is evicted in a 1 GiB cache: hits are exactly the block-granular bound
    assert res["cached_tokens"] == block_saved_tokens(tr, order, 128)
    assert res["cached_tokens"] % 128 == 0 and res["config"]["engine_block_size"] == 128
    import pyarrow.parquet as pq

    steps = pq.read_table(tmp_path / "fifo_vllm_steps.parquet").to_pydict()
    prompt, out = int(tr.prompt_len.sum()), int(tr.output_len.sum())
    assert sum(steps["prefill_tokens"]) + res["cached_tokens"] == prompt  # each prompt token once
    assert sum(steps["decode_tokens"]) == out - len(tr)  # the prefill step samples the first token
    assert sum(steps["finished"]) == 12 and max(steps["running"]) <= 8
    assert all(t > 0 for t in steps["step_s"]) and res["steps"] == len(steps["step"])
    assert res["total_tokens"] == prompt + out and res["throughput_tok_s"] > 0


def test_max_steps_keeps_what_was_measured(trace_file: tuple[Trace, Path], tmp_path: Path) -> None:
    from blendsim.executor.isolate import run_isolated

    _tr, path = trace_file
    res = run_isolated(path, np.arange(12), _config(), "dfs", tmp_path, max_steps=5)
    assert res["steps"] == 5 and not res["completed"]
    assert json.loads((tmp_path / "dfs_vllm.json").read_text())["steps"] == 5


def test_model_dir_that_does_not_load_is_a_user_error(trace_file: tuple[Trace, Path], tmp_path: Path) -> None:
    from blendsim.errors import UserError
    from blendsim.executor.isolate import run_isolated

    _tr, path = trace_file
    bad = tmp_path / "model"
    bad.mkdir()
    cfg = json.loads((default_model_dir() / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(cfg))  # a config but no weights
    with pytest.raises(UserError, match="does not load in vLLM"):
        run_isolated(path, np.arange(12), _config(model_dir=str(bad)), "fifo", tmp_path / "out")


def test_dummy_weights_from_a_model_name(trace_file: tuple[Trace, Path], tmp_path: Path) -> None:
    """--dummy-weights needs no weights and no directory: the engine is built from the name's shapes."""
    from blendsim.executor.dummy_model import dummy_model_dir
    from blendsim.executor.isolate import run_isolated

    _tr, path = trace_file
    model_dir = dummy_model_dir("smollm2-135m", tmp_path / "cache")
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json"]
    res = run_isolated(
        path, np.arange(12), _config(model_dir=str(model_dir), dummy_weights=True), "fifo", tmp_path / "out"
    )
    assert res["completed"] and res["wrong_lengths"] == [] and res["steps"] > 0


def test_pacing_releases_and_caps_prefill(trace_file: tuple[Trace, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from blendsim.executor.isolate import run_isolated

    _tr, path = trace_file
    release = np.array([0, 0, 0, 0, 6, 6, 6, 6, 12, 12, 12, 12])
    caps = np.array([200, 200, 0, 0, 64, -1, 130, 130, 130, 130])  # steps 10 and on: no cap
    res = run_isolated(path, np.arange(12), _config(), "blend", tmp_path, pacing=Pacing(release, caps))
    assert res["completed"] and res["admitted_order"] == list(range(12))
    steps = pq.read_table(tmp_path / "blend_vllm_steps.parquet").to_pydict()
    admitted = np.array(steps["admitted"])
    first_step = np.repeat(np.arange(len(admitted)), admitted)  # step at which each was first scheduled
    assert np.all(first_step >= release)
    applied = np.array(steps["prefill_cap"])
    assert applied[:10].tolist() == caps.tolist() and np.all(applied[10:] == -1)
    prefill = np.array(steps["prefill_tokens"])
    capped = applied >= 0
    assert np.all(prefill[capped] <= applied[capped])  # every capped step kept within its cap
    assert prefill[0] == 200 and prefill[5] > 200  # the cap binds; uncapped steps fill the budget


def test_calibrate_cli_writes_a_fitted_profile(tmp_path: Path) -> None:
    import subprocess
    import sys

    from blendsim.profiler.profile import builtin_profile, load_profile

    kernel = tmp_path / "kernel.json"
    builtin_profile("a100-80g").save(kernel)  # any peaks: the fit rescales the efficiencies
    out = tmp_path / "cal.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blendsim.cli",
            "executor",
            "calibrate",
            "--profile",
            str(kernel),
            "--quick",
            "--max-steps",
            "60",
            "--kv-cache-gib",
            "1",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fit on" in proc.stdout and "step MAPE" in proc.stdout
    cal = load_profile(out)
    assert cal.model == "smollm2-135m" and cal.provenance.measured and cal.name == "a100-80g-vllm"
    import pyarrow.parquet as pq

    steps = pq.read_table(tmp_path / "cal_steps.parquet").to_pydict()
    assert steps["admitted"][:6] == [1, 0, 1, 0, 1, 0]  # the staggered phase: a new prompt every 2 steps
    first = zip(steps["prefill_tokens"][:12], steps["decode_tokens"][:12], strict=True)
    assert sum(p == 64 and d > 0 for p, d in first) >= 4  # one 64-token chunk beside earlier decodes


def test_execute_data_parallel_runs_one_engine_per_replica(
    trace_file: tuple[Trace, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    tr, path = trace_file
    out = tmp_path / "dp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blendsim.cli",
            "execute",
            str(path),
            "--backend",
            "vllm",
            "--policy",
            "blend",
            "--gpu",
            "a100-80g",
            "--dp",
            "2",
            "--kv-cache-gib",
            "1",
            "--token-budget",
            "512",
            "--max-running",
            "8",
            "--waiting-limit",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = json.loads((out / "vllm" / "blend_vllm.json").read_text())
    assert merged["dp"] == 2 and merged["completed"] and merged["requests"] == len(tr)
    parts = [json.loads((out / "vllm" / f"blend_r{r}_vllm.json").read_text()) for r in (0, 1)]
    assert sum(p["requests"] for p in parts) == len(tr) and all(p["completed"] for p in parts)
    assert merged["makespan_s"] == max(p["makespan_s"] for p in parts)
    entry = json.loads((out / "comparison.json").read_text())["entries"][0]
    assert entry["policy"] == "blend" and entry["backend"] == "vllm" and entry["measured_tok_s"] > 0
