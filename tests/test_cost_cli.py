"""``blendsim cost``: request and step output, JSON, and bad input (one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blendsim.cli import main
from blendsim.profiler.profile import builtin_profile


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["cost", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_mmlu_request_density(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(
        capsys,
        "--model",
        "llama-3-8b",
        "--gpu",
        "a100-80g",
        "--prompt",
        "804",
        "--output",
        "2",
        "--shared",
        "697",
    )
    r = out["request"]
    assert r["density"] == pytest.approx(54.2, abs=2.0)
    assert r["comp_s"] == pytest.approx(2 * 8.03e9 * 109 / 312e12)
    assert r["mem_s"] == pytest.approx((804 * 2 + 2) * 131072 / 2.039e12)


def test_step_reports_both_compositions(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(
        capsys,
        "--model",
        "llama-3-8b",
        "--gpu",
        "h100-sxm",
        "--prefill",
        "512@1024",
        "--prefill",
        "256",
        "--decode-seqs",
        "64",
        "--kv-len",
        "2000",
    )
    s = out["step"]
    assert s["prefill_tokens"] == 768
    assert s["prefill_attn_pairs"] == 512 * 1024 + 512 * 513 / 2 + 256 * 257 / 2
    assert s["decode_kv_tokens"] == 128000
    assert s["overlap"]["total_s"] <= s["serial"]["total_s"]
    assert 0 < s["serial"]["achieved_tflops"] < s["peak_tflops"]
    assert 0 < s["overlap"]["achieved_gbps"] < s["peak_gbps"]


def test_text_output_names_peaks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", "llama-3-8b", "--decode-seqs", "256", "--kv-len", "1024"]) == 0
    text = capsys.readouterr().out
    assert "serial" in text and "overlap" in text and "/ 312 TFLOP/s" in text and "/ 2039 GB/s" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "gpt-9", "--prompt", "1", "--output", "1"],
        ["--model", "llama-3-8b", "--gpu", "v100", "--prompt", "1", "--output", "1"],
        ["--model", "llama-3-8b"],
        ["--model", "llama-3-8b", "--prompt", "10", "--output", "1", "--shared", "11"],
        ["--model", "llama-3-8b", "--prefill", "abc"],
        ["--model", "llama-3-8b", "--decode-seqs", "4"],
        ["--model", "llama-3-8b", "--profile", "/nonexistent/p.json", "--prompt", "1", "--output", "1"],
    ],
)
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["cost", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blendsim: error:")


def test_config_json_missing_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2}))
    assert main(["cost", "--model", str(cfg), "--prompt", "1", "--output", "1"]) == 2
    err = capsys.readouterr().err
    assert "num_attention_heads" in err and len(err.strip().splitlines()) == 1


def test_invalid_profile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"format": "blendsim-profile/1", "name": "x"}')
    assert (
        main(["cost", "--model", "llama-3-8b", "--profile", str(bad), "--prompt", "1", "--output", "1"]) == 2
    )
    assert "not a valid profile" in capsys.readouterr().err


def test_step_decode_attention_counts_the_prefill_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = builtin_profile("a100-80g").to_dict()
    data["params"].update(decode_prefill_s=0.01, decode_prefill_half=768.0)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    base = ["--model", "llama-3-8b", "--decode-seqs", "64", "--kv-len", "2000"]
    prefill = ["--prefill", "512@1024", "--prefill", "256"]  # 768 prefill tokens
    alone = run_json(capsys, *base, "--profile", str(path))["step"]
    mixed = run_json(capsys, *base, *prefill, "--profile", str(path))["step"]
    builtin = run_json(capsys, *base, *prefill)["step"]
    assert mixed["decode_attn_s"] == pytest.approx(alone["decode_attn_s"] + 0.01 * 768 / (768 + 768))
    assert mixed["decode_attn_s"] == pytest.approx(builtin["decode_attn_s"] + 0.005)
    assert mixed["serial"]["memory_s"] == mixed["decode_attn_s"]
