"""Run one vLLM replay in a fresh process: one engine per process.

A second vLLM engine in the same process does not free the first's memory, so each policy's replay
runs as ``python -m blendsim.executor.isolate SPEC.json``: the spec names the trace file, the
admission order and its pacing (``.npy``), the :class:`VllmRunConfig` fields, the policy and the
output folder. The child writes ``<policy>_vllm.json`` and ``_steps.parquet`` there (also when
interrupted: what it measured is kept) and exits 2 with one line on stderr for a user error.
``python`` may be another environment's interpreter (vLLM in its own venv) as long as it can import
blendsim.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.child import module_command
from blendsim.errors import EXIT_USER_ERROR, UserError
from blendsim.executor.pacing import Pacing
from blendsim.executor.vllm_engine import VllmRunConfig


def run_isolated(
    trace_path: str | Path,
    order: np.ndarray,
    config: VllmRunConfig,
    policy: str,
    out_dir: str | Path,
    *,
    max_steps: int | None = None,
    python: str | None = None,
    seed: int = 0,
    pacing: Pacing | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Replay ``order`` (paced by ``pacing``, see :mod:`blendsim.executor.pacing`) in a child process;
    returns the result dict it wrote (``ExecResult.to_dict``). ``env`` adds to the child's environment."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order_path = out / f"{policy}_order.npy"
    np.save(order_path, np.asarray(order, dtype=np.int64))
    spec = {
        "trace": str(trace_path),
        "order": str(order_path),
        "config": config.as_dict(),
        "policy": policy,
        "out": str(out),
        "max_steps": max_steps,
        "seed": seed,
        **(pacing or Pacing()).save(out, policy),
    }
    spec_path = out / f"{policy}_spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    log_path = out / f"{policy}_vllm.log"
    cmd = module_command(python, "blendsim.executor.isolate", str(spec_path))
    interrupted = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env} if env else None
        )
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # the child got it too: let it write what it measured
                interrupted = True
    result_path = out / f"{policy}_vllm.json"
    if code == EXIT_USER_ERROR:
        raise UserError(_last_line(log_path, prefix="blendsim: error: "))
    if not result_path.is_file() or (code != 0 and not interrupted):
        raise UserError(
            f"the vLLM replay of {policy} failed (exit {code}): {_last_line(log_path)}; log: {log_path}"
        )
    result: dict[str, Any] = json.loads(result_path.read_text())
    if interrupted:
        raise KeyboardInterrupt
    return result


def _last_line(path: Path, prefix: str = "") -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if prefix and ln.startswith(prefix):
            return ln[len(prefix) :]
    return lines[-1] if lines else "no output"


def child_main(spec_path: str) -> int:
    from blendsim.executor.vllm_backend import run_vllm
    from blendsim.traces.io import read_trace

    spec = json.loads(Path(spec_path).read_text())
    trace = read_trace(spec["trace"])
    order = np.load(spec["order"])
    config = VllmRunConfig(**spec["config"])
    result = run_vllm(
        trace,
        order,
        config,
        policy=spec["policy"],
        max_steps=spec.get("max_steps"),
        out_dir=spec["out"],
        seed=int(spec.get("seed", 0)),
        pacing=Pacing.load(spec),
    )
    if result.interrupted:
        print("blendsim: interrupted; kept what was measured", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m blendsim.executor.isolate SPEC.json", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        return child_main(args[0])
    except UserError as exc:
        print(f"blendsim: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
