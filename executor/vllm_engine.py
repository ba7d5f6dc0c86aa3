"""Building a vLLM engine for step-by-step driving, and the checks that go before it.

Everything vLLM-specific that is not the driving loop lives here: the environment vLLM's CPU build
needs (set before ``import vllm``), the import with a clear message when vLLM is absent, the device
check, reading the model directory's ``config.json``, and ``LLMEngine.from_engine_args`` with the
configuration the executor replays under (prefix caching on, eager mode, in-process engine core).

Facts about vLLM 0.32 this relies on (read in its source, ``vllm/v1/engine/llm_engine.py``,
``vllm/platforms/cpu.py``, ``vllm/v1/core/sched/scheduler.py``):
* ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine core in this process, so its scheduler is
  reachable as ``engine.engine_core.engine_core.scheduler``;
* ``VLLM_CPU_KVCACHE_SPACE`` (whole GiB) overrides ``kv_cache_memory_bytes`` on CPU, so it is removed
  and the size is passed as ``kv_cache_memory_bytes`` (any number of bytes);
* the CPU attention backend's default KV block is 128 tokens.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blendsim.errors import UserError
from blendsim.profiler.models import ModelSpec
from blendsim.sim.simulation.config import EngineConfig

VLLM_VERSION = "0.32.0"  # pinned: the step/scheduler internals read here are those of this version
# The engine the executor drives, in the simulator's terms (EngineConfig fields; the defaults of the
# executor's verbs): vLLM composes a step's operators serially, its CPU attention backend's KV block
# is 128 tokens, and max_num_batched_tokens / max_num_seqs of the CPU validation.
VLLM_ENGINE: dict[str, Any] = {
    "engine": "serial",
    "block_size": 128,
    "token_budget": 2048,
    "max_running": 256,
}
INSTALL_HINT = "install it with `blendsim executor setup --device cpu` (see docs/executor.md)"
DEVICES = ("cpu", "cuda")
GiB = 1 << 30


@dataclass(frozen=True)
class VllmRunConfig:
    """How the engine is built and fed. Invariant: positive sizes; ``waiting_limit`` >= 1.

    kv_cache_gib: KV cache size (GiB), replaces ``VLLM_CPU_KVCACHE_SPACE``.
    max_num_batched_tokens: token budget of one step (chunked prefill splits prompts to fit it).
    max_num_seqs: cap on running requests.
    block_size: KV block in tokens; None keeps the engine's default (128 on vLLM-CPU).
    waiting_limit: requests handed to vLLM and not yet scheduled, at most; the rest wait in the
        executor in admission order, so vLLM admits them in that order.
    dummy_weights: random weights (``load_format="dummy"``); the directory then needs only config.json.
    threads: torch/OpenMP threads of the engine (``OMP_NUM_THREADS``). 1 by default: on a loaded
        2-core machine two OpenMP threads stall at every barrier (measured 3x slower prefill).
    tokenizer: the engine loads the model's tokenizer and detokenizes outputs (text, stop strings:
        a real batch); off, prompts and outputs are token ids only (trace replays).
    """

    model_dir: str
    kv_cache_gib: float = 2.0
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    block_size: int | None = None
    waiting_limit: int = 64
    dtype: str = "bfloat16"
    threads: int = 1
    dummy_weights: bool = False
    device: str = "cpu"
    tp: int = 1
    seed: int = 0
    tokenizer: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; valid: {', '.join(DEVICES)}")
        for name in (
            "kv_cache_gib",
            "max_num_batched_tokens",
            "max_num_seqs",
            "waiting_limit",
            "threads",
            "tp",
        ):
            if not getattr(self, name) > 0:
                raise UserError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.block_size is not None and self.block_size < 1:
            raise UserError(f"block size must be positive, got {self.block_size}")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def of(cls, engine: EngineConfig, model_dir: str, **rest: Any) -> VllmRunConfig:
        """The vLLM engine that runs as ``engine`` describes: its token budget, running cap and KV
        block; ``rest`` are the other fields."""
        return cls(
            model_dir,
            max_num_batched_tokens=engine.token_budget,
            max_num_seqs=engine.max_running,
            block_size=engine.block_size,
            **rest,
        )


def kv_cache_tokens(config: VllmRunConfig) -> int:
    """Tokens of KV that ``config``'s cache holds for its model directory's model."""
    from blendsim.profiler.models import model_from_config

    kv_bytes = model_from_config(Path(config.model_dir) / "config.json").kv_bytes_per_token
    return int(config.kv_cache_gib * GiB) // kv_bytes


def kv_capacity_config(model: ModelSpec, engine: EngineConfig, kv_cache_gib: float) -> EngineConfig:
    """``engine`` with the KV capacity of a ``kv_cache_gib`` cache of ``model``, in whole blocks:
    the simulator's configuration of the vLLM engine it is compared with. UserError when the cache
    holds no block (the message names the size)."""
    tokens = int(kv_cache_gib * GiB) // model.kv_bytes_per_token if kv_cache_gib > 0 else 0
    if tokens < engine.block_size:
        raise UserError(
            f"a KV cache of {kv_cache_gib:g} GiB holds no {engine.block_size}-token block of {model.name} "
            f"({model.kv_bytes_per_token:,} bytes per token); give a larger KV cache"
        )
    return engine.with_(kv_capacity_override=tokens - tokens % engine.block_size)


def configure_environment(threads: int) -> None:
    """Environment vLLM reads at import and engine start; call before ``import vllm``."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def vllm_installed() -> str | None:
    """The installed vLLM distribution and version ("vllm-cpu 0.32.0"), or None."""
    for dist in ("vllm-cpu", "vllm"):
        try:
            return f"{dist} {md.version(dist)}"
        except md.PackageNotFoundError:
            continue
    return None


def import_vllm() -> Any:
    """``import vllm``, or a UserError saying how to install it."""
    if vllm_installed() is None:
        raise UserError(f"vLLM is not installed in this environment; {INSTALL_HINT}")
    try:
        return importlib.import_module("vllm")
    except Exception as exc:  # a broken install (e.g. CUDA torchvision beside CPU torch)
        raise UserError(
            f"vLLM is installed but does not import ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); reinstall: {INSTALL_HINT}"
        ) from None


def check_device(device: str) -> None:
    """A GPU asked for but absent (or a CPU-only vLLM build) is a UserError."""
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is visible to torch here; use --device cpu")
    installed = vllm_installed() or ""
    if installed.startswith("vllm-cpu"):
        raise UserError(
            f"--device cuda needs the GPU build of vLLM (vllm=={VLLM_VERSION}); "
            f"this environment has {installed}"
        )


def read_model_config(model_dir: str | Path) -> dict[str, Any]:
    """The model directory's config.json, checked for what the executor needs."""
    path = Path(model_dir)
    cfg_path = path / "config.json"
    if not path.is_dir():
        raise UserError(
            f"model directory {str(path)!r} does not exist; prepare SmolLM2 with "
            "`blendsim executor prepare-model`"
        )
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"model directory {str(path)!r} has no config.json; it is not a Hugging Face model directory"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"model directory {str(path)!r}: config.json is not readable JSON ({exc})") from None
    for key in ("vocab_size", "max_position_embeddings", "num_hidden_layers"):
        if not isinstance(cfg.get(key), int):
            raise UserError(f"model directory {str(path)!r}: config.json lacks integer {key!r}")
    result: dict[str, Any] = cfg
    return result


def build_engine(config: VllmRunConfig, max_model_len: int) -> Any:
    """An in-process ``LLMEngine`` with prefix caching; a model that does not load is a UserError."""
    configure_environment(config.threads)
    check_device(config.device)
    vllm = import_vllm()
    kwargs: dict[str, Any] = dict(
        model=str(config.model_dir),
        enforce_eager=True,
        enable_prefix_caching=True,
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_num_seqs=config.max_num_seqs,
        max_model_len=max_model_len,
        dtype=config.dtype,
        seed=config.seed,
        disable_log_stats=False,
        kv_cache_memory_bytes=int(config.kv_cache_gib * GiB),
        skip_tokenizer_init=not config.tokenizer,
        tensor_parallel_size=config.tp,
    )
    if config.block_size is not None:
        kwargs["block_size"] = config.block_size
    if config.dummy_weights:
        kwargs["load_format"] = "dummy"
    try:
        return vllm.LLMEngine.from_engine_args(vllm.EngineArgs(**kwargs))
    except UserError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(
            f"model directory {str(config.model_dir)!r} does not load in vLLM "
            f"({type(exc).__name__}: {first[:300]})"
        ) from None


def scheduler_of(engine: Any) -> Any:
    """The in-process engine core's scheduler (needs VLLM_ENABLE_V1_MULTIPROCESSING=0)."""
    return engine.engine_core.engine_core.scheduler
