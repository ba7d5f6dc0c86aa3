"""The validation pipeline (torch backend, quick, few steps) and the validate verb's bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import blendsim.cli
from blendsim.errors import UserError
from blendsim.executor.validate import run_validation
from blendsim.executor.validation_trace import MAX_OUTPUT, MAX_PROMPT, validation_trace
from blendsim.profiler.profile import BUILTIN_DIR


@pytest.fixture
def main():
    """``blendsim.cli.main``: the validate verb as users reach it."""
    return blendsim.cli.main


def test_validation_trace_fits_and_mixes() -> None:
    trace = validation_trace()
    assert 200 <= len(trace) <= 400
    assert trace.prompt_len.max() <= MAX_PROMPT and trace.output_len.max() <= MAX_OUTPUT
    assert trace.output_len.min() >= 1
    assert set(trace.sources) == {"mmlu", "burstgpt", "sharegpt", "openvid"}
    assert 0.1 < trace.sharing() < 0.6
    by_source = {s: trace.output_len[trace.source_codes == i].mean() for i, s in enumerate(trace.sources)}
    assert by_source["openvid"] > 10 * by_source["mmlu"]  # memory-heavy next to compute-heavy
    again = validation_trace()
    assert np.array_equal(again.seg_ids, trace.seg_ids) and np.array_equal(again.output_len, trace.output_len)


def test_quick_torch_validation_writes_the_comparison(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    comp = run_validation(
        tmp_path,
        quick=True,
        backends=("torch",),
        policies=("fifo", "blend"),
        profile_path=str(BUILTIN_DIR / "a100-80g.json"),
        torch_max_steps=2,
    )
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert (tmp_path / "comparison.md").is_file() and (tmp_path / "trace.parquet").is_file()
    assert [(e["policy"], e["backend"]) for e in data["entries"]] == [("fifo", "torch"), ("blend", "torch")]
    for e in data["entries"]:
        assert e["steps"] == 2 and e["measured_tok_s"] > 0 and e["simulated_tok_s"] > 0
        assert e["error"] == pytest.approx(e["simulated_tok_s"] / e["measured_tok_s"] - 1)
        assert e["step_mape"] >= 0 and set(e["operators"]) >= {"gemm", "head"}
    assert [s["baseline"] for s in data["speedups"]] == ["fifo"]
    assert len(comp.entries) == 2
    assert (tmp_path / "torch" / "fifo_torch_steps.parquet").is_file()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_absent_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="blendsim executor setup --device cpu"):
        run_validation(tmp_path, quick=True, backends=("vllm",))
    assert not (tmp_path / "comparison.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--out", "X", "--backend", "tpu"],
        ["validate", "--out", "X", "--policy", "fifo,lifo"],
        ["validate", "--out", "X", "--max-error", "-1"],
    ],
)
def test_bad_input_is_one_line_exit_2(
    main, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / a) if a == "X" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("blendsim: error:") and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_asked_for_but_absent(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA GPU" in err and "\n" not in err
