"""``--dp N`` on vLLM: one engine per replica, each replaying its replica's share of the simulated plan.

The simulator splits the pool across N replicas (:mod:`blendsim.sim.simulation.replicas`). Replica ``r``'s
requests, in its admission order and with its own pacing (release steps and prefill caps of its
steps, :class:`~blendsim.executor.pacing.Pacing`), become a sub-trace that one engine process
replays (:func:`~blendsim.executor.isolate.run_isolated`). The N processes run at once; on CUDA
replica ``r`` sees GPU ``r`` only (``CUDA_VISIBLE_DEVICES``), on CPU they share the cores.

Engines start at different moments, so each replica's makespan runs from its own first step. The
measured makespan is the slowest replica's and the throughput all tokens over it, as the simulator's
data-parallel makespan is its slowest replica's. Per-replica results stay in ``<policy>_r<k>_vllm.json``.

:func:`replay_on_vllm` is the one entry point ``execute`` and ``validate`` use: one engine for a
one-replica simulation, one per replica otherwise.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.executor.pacing import Pacing
from blendsim.executor.records import MeasuredRun
from blendsim.executor.vllm_engine import VllmRunConfig
from blendsim.outputs import write_json
from blendsim.sim.simulation.result import SimResult
from blendsim.traces.trace import Trace


def replay_on_vllm(
    trace: Trace,
    trace_path: str | Path,
    sim: SimResult,
    config: VllmRunConfig,
    out_dir: Path,
    *,
    max_steps: int | None = None,
    python: str | None = None,
    seed: int = 0,
) -> MeasuredRun:
    """Replay ``sim``'s plan on vLLM (``trace`` is the file at ``trace_path``); the measured result."""
    from blendsim.executor.isolate import run_isolated

    policy = sim.policy
    if len(np.unique(sim.admission["replica"])) > 1:
        return MeasuredRun.from_dict(
            run_data_parallel(
                trace, sim, config, policy, out_dir, max_steps=max_steps, python=python, seed=seed
            )
        )
    result = run_isolated(
        trace_path,
        np.asarray(sim.admission["position"], dtype=np.int64),
        config,
        policy,
        out_dir,
        max_steps=max_steps,
        python=python,
        seed=seed,
        pacing=Pacing.from_sim(sim),
    )
    return MeasuredRun.from_dict(result)


def replica_shares(trace: Trace, sim: SimResult) -> list[tuple[Trace, Pacing]]:
    """Per replica: its sub-trace in its admission order (replayed as ``arange``) and its pacing."""
    adm = sim.admission
    shares = []
    for r in np.unique(adm["replica"]).tolist():
        positions = np.asarray(adm["position"][adm["replica"] == r], dtype=np.int64)
        shares.append((trace.subset(positions), Pacing.from_sim(sim, r)))
    return shares


def run_data_parallel(
    trace: Trace,
    sim: SimResult,
    config: VllmRunConfig,
    policy: str,
    out_dir: Path,
    *,
    max_steps: int | None = None,
    python: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Replay every replica's share at once; returns the merged result (``ExecResult.to_dict`` keys)."""
    from blendsim.executor.isolate import run_isolated
    from blendsim.traces.io import write_trace

    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for r, (sub, pacing) in enumerate(replica_shares(trace, sim)):
        path = out_dir / f"{policy}_r{r}_trace.parquet"
        write_trace(sub, path)
        env = {"CUDA_VISIBLE_DEVICES": str(r)} if config.device == "cuda" else None
        jobs.append((path, np.arange(len(sub)), f"{policy}_r{r}", pacing, env))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [
            pool.submit(
                run_isolated,
                path,
                order,
                config,
                name,
                out_dir,
                max_steps=max_steps,
                python=python,
                seed=seed,
                pacing=pacing,
                env=env,
            )
            for path, order, name, pacing, env in jobs
        ]
        results = [f.result() for f in futures]
    merged = merge_replicas(policy, results)
    write_json(out_dir / f"{policy}_vllm.json", merged)
    return merged


def merge_replicas(policy: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for the data-parallel run (module docstring): sums, and the slowest makespan."""
    makespan = max(r["makespan_s"] for r in results)
    tokens = sum(r["total_tokens"] for r in results)
    cached = sum(r["cached_tokens"] for r in results)
    return {
        "policy": policy,
        "engine": results[0]["engine"],
        "device": results[0]["device"],
        "backend": "vllm",
        "requests": sum(r["requests"] for r in results),
        "total_tokens": tokens,
        "makespan_s": makespan,
        "throughput_tok_s": tokens / makespan if makespan > 0 else 0.0,
        "steps": max(r["steps"] for r in results),
        "preemptions": sum(r["preemptions"] for r in results),
        "sharing": cached / tokens if tokens else 0.0,
        "cached_tokens": cached,
        "finished_requests": sum(r["finished_requests"] for r in results),
        "completed": all(r["completed"] for r in results),
        "interrupted": any(r["interrupted"] for r in results),
        "wrong_lengths": [x for r in results for x in r["wrong_lengths"]][:20],
        "dp": len(results),
        "replicas": [
            {
                k: r[k]
                for k in (
                    "requests",
                    "total_tokens",
                    "makespan_s",
                    "throughput_tok_s",
                    "steps",
                    "cached_tokens",
                    "engine_start_s",
                )
            }
            for r in results
        ],
        "config": results[0]["config"],
    }
