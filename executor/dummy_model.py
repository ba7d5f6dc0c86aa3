"""Model directories for ``--dummy-weights``: vLLM needs only a ``config.json`` when it draws random
weights (``load_format="dummy"``), and with forced output lengths throughput does not depend on the
weights' values.

:func:`dummy_model_dir` accepts what users have at hand: a model directory, a ``config.json``, or a
built-in model name (``blendsim.profiler.models.MODELS``). A name becomes a Llama-architecture
config with the model's shapes (layers, hidden size, heads, KV heads, head dim, intermediate size,
vocabulary): every model in the table is a Llama-style decoder (RMSNorm, SwiGLU MLP, rotary
embeddings, grouped-query attention); the Qwen models' QKV biases are left out (three vectors per
layer, negligible work). The directory is written once under the blendsim cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from blendsim.errors import UserError
from blendsim.executor.model_prep import cache_dir as blendsim_cache
from blendsim.profiler.models import ModelSpec, get_model

MAX_POSITIONS = 131_072  # context of the generated configs; vLLM's max_model_len is set per trace


def llama_config(spec: ModelSpec) -> dict[str, Any]:
    """A Hugging Face ``LlamaForCausalLM`` config with ``spec``'s shapes."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "_name_or_path": spec.name,
        "num_hidden_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "intermediate_size": spec.intermediate_size,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": MAX_POSITIONS,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 500_000.0,
        "tie_word_embeddings": tied_embeddings(spec),
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def tied_embeddings(spec: ModelSpec) -> bool:
    """Whether ``spec``'s parameter count says the LM head shares the embedding matrix."""
    one = spec.layer_params + spec.vocab_size * spec.hidden_size
    return abs(spec.params - one) < abs(spec.params - (one + spec.vocab_size * spec.hidden_size))


def dummy_model_dir(model: str, cache_dir: Path | None = None) -> Path:
    """A directory vLLM can build ``model`` from with dummy weights (module docstring)."""
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model directory {model!r} has no config.json")
        return path
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise UserError(f"model config {model!r} does not exist")
        text = path.read_text()
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"model config {model!r} is not valid JSON: {exc}") from None
        name = f"config-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
        target = _cache(cache_dir) / name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / "config.json")
        return target
    spec = get_model(model)  # an unknown name is a UserError listing the built-in ones
    target = _cache(cache_dir) / spec.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(llama_config(spec), indent=2) + "\n")
    return target


def _cache(cache_dir: Path | None) -> Path:
    return (cache_dir or blendsim_cache()) / "dummy-models"
