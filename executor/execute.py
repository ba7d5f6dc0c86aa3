"""``blendsim execute``: simulate each policy, replay it on a real engine, compare.

The simulation runs under an :class:`EngineConfig` that matches the engine replayed (token budget,
running cap, KV block and KV capacity from the vLLM settings), so both sides see the same limits;
the vLLM replay follows the simulator's first-admission order (for ``blend``, the merged order of
its two scanners) and its timing in steps (:mod:`blendsim.executor.pacing`): each request is handed
to vLLM only once as many steps have run as had run when the simulator admitted it, and each step
runs at most the prefill tokens the simulated step was capped at. Outputs in ``--out``: ``sim/``
(simulated results), ``vllm/`` or ``torch/`` (measured), ``comparison.json`` and ``comparison.md``.
``--dp N`` simulates N replicas; vLLM then runs one engine per replica at once
(:mod:`blendsim.executor.data_parallel`), the torch backend replays the replicas one after the other.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blendsim.errors import UserError
from blendsim.executor.vllm_engine import (
    GiB,
    VllmRunConfig,
    check_device,
)
from blendsim.profiler.specs import ModelSpec
from blendsim.sim.simulation.config import EngineConfig
from blendsim.traces.trace import Trace


def engine_config(
    model: ModelSpec, engine: str, kv_cache_gib: float, token_budget: int, max_running: int, block_size: int
) -> EngineConfig:
    """The simulator's configuration of the engine replayed (KV capacity in whole blocks)."""
    tokens = int(kv_cache_gib * GiB) // model.kv_bytes_per_token
    return EngineConfig(
        engine=engine,
        token_budget=token_budget,
        max_running=max_running,
        block_size=block_size,
        kv_capacity_override=tokens - tokens % block_size,
    )


def _profile(args: argparse.Namespace, model: ModelSpec) -> Any:
    from blendsim.profiler.profile import resolve_profile

    if args.device == "cpu" and not args.profile and not args.gpu:
        raise UserError(
            "simulating a CPU run needs a CPU profile: pass --profile FILE (make one with "
            f"`blendsim profile --device cpu --model {model.name} -o cpu.json`)"
        )
    return resolve_profile(args.gpu, args.profile, model)


def _check_vllm_side(trace: Trace, cfg: VllmRunConfig, python: str | None) -> None:
    from blendsim.executor.validate import check_vllm
    from blendsim.executor.vllm_backend import check_trace_fits

    check_device(cfg.device)
    check_vllm(python or sys.executable)
    check_trace_fits(trace, cfg)


def execute(
    trace_path: str,
    backend: str,
    policies: Sequence[str],
    args: argparse.Namespace,
    vllm_config: VllmRunConfig | None,
) -> Any:
    """Run ``policies`` on ``backend`` (module docstring); returns the written Comparison."""
    from blendsim.executor.compare import Comparison, entry_from_replay, entry_from_results
    from blendsim.executor.data_parallel import replay_on_vllm
    from blendsim.profiler.specs import get_model
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.simulation.run import simulate
    from blendsim.traces.io import read_trace

    started = time.perf_counter()
    trace = read_trace(trace_path)
    trace.validate()
    model = get_model(args.model)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} exists and is not a directory")
    if vllm_config is not None:
        _check_vllm_side(trace, vllm_config, args.vllm_python)
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.dp < 1:
        raise UserError(f"--dp must be >= 1, got {args.dp}")
    profile = _profile(args, model).bind(model, args.tp)
    config = engine_config(
        model, args.engine, args.kv_cache_gib, args.token_budget, args.max_running, args.block_size
    )
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for policy in policies:
        if backend == "vllm":
            assert vllm_config is not None
            plan = make_plan(trace, policy, model, profile.hardware, seed=args.seed)
            sim = simulate(trace, plan, model, profile, config, args.dp)
            sim.write(out / "sim")
            _say(
                f"{policy}: simulated {sim.throughput_tok_s:,.0f} tok/s; replaying on vLLM"
                + (f" ({args.dp} engines at once)" if args.dp > 1 else "")
            )
            measured = replay_on_vllm(
                trace,
                trace_path,
                sim,
                vllm_config,
                policy,
                out / "vllm",
                max_steps=args.max_steps,
                python=args.vllm_python,
                seed=args.seed,
            )
            entry = entry_from_results(sim.to_dict(), measured, "vllm")
            _say(f"{policy}: measured {entry.measured_tok_s:,.0f} tok/s (error {entry.error:+.1%})")
        else:
            from blendsim.executor.torch_backend import ReplayOptions, replay_policy

            opts = ReplayOptions(
                device=args.device, max_steps=args.max_steps, threads=args.threads, seed=args.seed
            )
            replay = replay_policy(trace, policy, model, profile, config, opts, dp=args.dp)
            replay.write(str(out / "torch"))
            entry = entry_from_replay(replay)
            _say(f"{policy}: torch replay, step MAPE {entry.extra.get('step_mape', float('nan')):.1%}")
        entries.append(entry)
    meta = {
        "trace": str(trace_path),
        "backend": backend,
        "device": args.device,
        "model": model.name,
        "profile": profile.name,
        "engine": args.engine,
        "requests": len(trace),
        "wall_s": time.perf_counter() - started,
        "vllm": vllm_config.as_dict() if vllm_config is not None else None,
    }
    comparison = Comparison(entries, meta)
    comparison.write(out)
    return comparison


def _say(msg: str) -> None:
    print(f"blendsim execute: {msg}", flush=True)
