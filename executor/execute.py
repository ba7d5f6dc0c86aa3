"""``blendsim execute``: simulate each policy, replay it on a real engine, compare.

The simulation runs under an :class:`EngineConfig` that matches the engine replayed (token budget,
running cap, KV block and KV capacity from the vLLM settings), so both sides see the same limits;
the vLLM replay follows the simulator's first-admission order (for ``blend``, the merged order of
its two scanners) and its timing in steps (:mod:`blendsim.executor.pacing`): each request is handed
to vLLM only once as many steps have run as had run when the simulator admitted it, and each step
runs at most the prefill tokens the simulated step was capped at. Outputs in ``--out``: ``sim/<backend>/``
(simulated results), ``vllm/`` or ``torch/`` (measured), ``comparison.json`` and ``comparison.md``.
The loop is :func:`blendsim.executor.pipeline.compare_policies`, the same as ``validate``'s.
``--dp N`` simulates N replicas; vLLM then runs one engine per replica at once
(:mod:`blendsim.executor.data_parallel`), the torch backend replays the replicas one after the other.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blendsim.errors import require
from blendsim.executor.compare import Comparison
from blendsim.executor.pipeline import Backend, TorchReplay, VllmReplay, compare_policies
from blendsim.executor.vllm_engine import VllmRunConfig, check_device, kv_capacity_config
from blendsim.profiler.profile import Profile
from blendsim.provenance import provenance
from blendsim.sim.simulation.config import EngineConfig
from blendsim.traces.trace import Trace


@dataclass(frozen=True)
class ExecuteRequest:
    """What ``execute`` runs: the trace file, the policies, the simulated engine (``engine``: the
    replayed engine's settings; its KV capacity comes from ``kv_cache_gib``), the backend and its
    settings (``vllm``: the engine built for the vLLM backend; None for torch)."""

    trace_path: str
    policies: Sequence[str]
    model: str
    engine: EngineConfig
    kv_cache_gib: float
    backend: str
    device: str = "cpu"
    vllm: VllmRunConfig | None = None
    vllm_python: str | None = None
    max_steps: int | None = None
    threads: int | None = None
    dp: int = 1
    tp: int = 1
    seed: int = 0


def check_backend(req: ExecuteRequest, trace: Trace) -> None:
    """The backend can run ``trace`` as ``req`` asks (torch: installed; vLLM: device, installation,
    model and KV size); a UserError otherwise."""
    if req.vllm is None:
        require("torch", "execute --backend torch")
        return
    from blendsim.executor.validate import check_vllm
    from blendsim.executor.vllm_backend import check_trace_fits

    check_device(req.vllm.device)
    check_vllm(req.vllm_python or sys.executable)
    check_trace_fits(trace, req.vllm)


def execute(req: ExecuteRequest, trace: Trace, profile: Profile, out: Path) -> Comparison:
    """Run ``req.policies`` on its backend (checked: :func:`check_backend`) against their
    simulation on ``profile`` (module docstring); returns the Comparison it wrote into ``out``."""
    from blendsim.profiler.models import get_model

    started = time.perf_counter()
    model = get_model(req.model)
    backend: Backend
    if req.vllm is not None:
        backend = VllmReplay(trace, Path(req.trace_path), req.vllm, req.vllm_python, req.max_steps, req.seed)
    else:
        backend = TorchReplay(model, req.device, req.max_steps, "first", req.threads, req.seed)
    bound = profile.bind(model, req.tp)
    config = kv_capacity_config(model, req.engine, req.kv_cache_gib)
    out.mkdir(parents=True, exist_ok=True)
    entries = compare_policies(
        trace, req.policies, model, bound, config, backend, out, dp=req.dp, seed=req.seed, say=_say
    )
    meta = {
        "trace": str(req.trace_path),
        "backend": req.backend,
        "device": req.device,
        "model": model.name,
        "profile": bound.name,
        "engine": config.engine,
        "requests": len(trace),
        "wall_s": time.perf_counter() - started,
        "vllm": req.vllm.as_dict() if req.vllm is not None else None,
        "provenance": provenance(seed=req.seed, profile=bound.name),
    }
    comparison = Comparison(entries, meta)
    comparison.write(out)
    return comparison


def _say(msg: str) -> None:
    print(f"blendsim execute: {msg}", flush=True)
