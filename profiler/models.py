"""Model specifications: what the cost model needs of a decoder-only transformer, each number with
its public source (``ModelSpec``, frozen; derived quantities are properties), the built-ins and a
Hugging Face ``config.json`` reader, and the tensor-parallel check on a model's heads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from blendsim.errors import UserError, unknown
from blendsim.limits import INT32_MAX
from blendsim.options import is_integer, is_number

_COUNTS = (
    "num_layers",
    "hidden_size",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "dtype_bytes",
)


def _count_problem(value: object) -> str | None:
    """Why ``value`` is not a count of a model's shapes (an integer in [1, INT32_MAX]), or None."""
    if not is_integer(value) or not 1 <= value <= INT32_MAX:
        return f"must be an integer in [1, {INT32_MAX}], got {value!r}"
    return None


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer's shapes. Invariants (checked when built): every count is an
    integer in [1, INT32_MAX], ``num_kv_heads`` divides ``num_heads``, ``params`` is finite and >= 0
    (0 while :func:`model_from_config` derives it); ``num_heads * head_dim`` is the attention width."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    params: float  # total parameter count (the paper's P_model)
    dtype_bytes: int = 2  # unquantised FP16/BF16, as the paper assumes
    source: str = ""

    def __post_init__(self) -> None:
        for name in _COUNTS:
            if problem := _count_problem(getattr(self, name)):
                raise UserError(f"model {self.name!r}: {name} {problem}")
        if self.num_heads % self.num_kv_heads:
            raise UserError(
                f"model {self.name!r}: num_kv_heads ({self.num_kv_heads}) must divide "
                f"num_heads ({self.num_heads})"
            )
        if not is_number(self.params) or not 0 <= self.params < 1e15:
            raise UserError(f"model {self.name!r}: params must be a number in [0, 1e15), got {self.params!r}")

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token over all layers: 2 x layers x kv_heads x head_dim x dtype bytes."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    @property
    def layer_params(self) -> int:
        """Weights one token passes through in the decoder layers (QKV, O, gated MLP)."""
        q = self.hidden_size * self.num_heads * self.head_dim
        kv = 2 * self.hidden_size * self.num_kv_heads * self.head_dim
        o = self.num_heads * self.head_dim * self.hidden_size
        mlp = 3 * self.hidden_size * self.intermediate_size
        return self.num_layers * (q + kv + o + mlp)

    @property
    def lm_head_params(self) -> int:
        """The LM head, applied once per sampled token (one per sequence per step)."""
        return self.vocab_size * self.hidden_size

    @property
    def weight_bytes(self) -> float:
        return self.params * self.dtype_bytes


_HF = "Hugging Face config.json of "

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            "llama-3-8b",
            32,
            4096,
            32,
            8,
            128,
            14336,
            128256,
            8.03e9,
            source=_HF + "meta-llama/Meta-Llama-3-8B; P from its model card",
        ),
        ModelSpec(
            "llama-3-70b",
            80,
            8192,
            64,
            8,
            128,
            28672,
            128256,
            70.6e9,
            source=_HF + "meta-llama/Meta-Llama-3-70B; P from its model card",
        ),
        ModelSpec(
            "llama-2-70b",
            80,
            8192,
            64,
            8,
            128,
            28672,
            32000,
            68.98e9,
            source=_HF + "meta-llama/Llama-2-70b-hf; P summed from that config (the model card says 70B)",
        ),
        ModelSpec(
            "llama-2-7b",
            32,
            4096,
            32,
            32,
            128,
            11008,
            32000,
            6.74e9,
            source=_HF + "meta-llama/Llama-2-7b-hf; P from the Llama 2 paper",
        ),
        ModelSpec(
            "qwen-2.5-7b",
            28,
            3584,
            28,
            4,
            128,
            18944,
            152064,
            7.62e9,
            source=_HF + "Qwen/Qwen2.5-7B; P from its model card",
        ),
        ModelSpec(
            "qwen-2.5-72b",
            80,
            8192,
            64,
            8,
            128,
            29568,
            152064,
            72.7e9,
            source=_HF + "Qwen/Qwen2.5-72B; P from its model card",
        ),
        ModelSpec(
            "deepseek-67b",
            95,
            8192,
            64,
            8,
            128,
            22016,
            102400,
            67.4e9,
            source=_HF + "deepseek-ai/deepseek-llm-67b-base; P from its model card",
        ),
        ModelSpec(
            "smollm2-135m",
            30,
            576,
            9,
            3,
            64,
            1536,
            49152,
            134.5e6,
            source=_HF + "HuggingFaceTB/SmolLM2-135M (tied embeddings)",
        ),
    )
}

_CONFIG_FIELDS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)


def model_from_config(path: str | Path) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face ``config.json``; the parameter count is derived. Every
    field used is checked: a UserError names the file, the field and its valid range."""
    p = Path(path)
    origin = f"model config {str(p)!r}"
    try:
        cfg = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{origin} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{origin} is a folder; give its config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{origin} is not readable JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{origin} is not a JSON object")
    missing = [f for f in _CONFIG_FIELDS if f not in cfg]
    if missing:
        raise UserError(f"{origin} lacks field(s) {', '.join(missing)}")

    def count(name: str, default: int | None = None) -> int:  # checked under its config.json name
        value = cfg.get(name) if cfg.get(name) is not None else default
        if problem := _count_problem(value):
            raise UserError(f"{origin}: {name} {problem}")
        assert isinstance(value, int)
        return value

    heads, hidden = count("num_attention_heads"), count("hidden_size")
    if "head_dim" not in cfg and hidden % heads:
        raise UserError(
            f"{origin}: hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads})"
        )
    try:
        spec = ModelSpec(
            name=str(cfg.get("_name_or_path") or p.parent.name or p.stem),
            num_layers=count("num_hidden_layers"),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=count("num_key_value_heads", heads),
            head_dim=count("head_dim", hidden // heads),
            intermediate_size=count("intermediate_size"),
            vocab_size=count("vocab_size"),
            params=0.0,
            source=f"config.json at {p}",
        )
    except UserError as exc:
        raise UserError(f"{origin}: {exc}") from None
    embeddings = spec.vocab_size * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    return ModelSpec(**{**spec.__dict__, "params": float(spec.layer_params + embeddings)})


def check_tp(model: ModelSpec, tp: int) -> None:
    """Tensor parallelism shards attention by heads: ``tp`` must divide the attention and KV heads."""
    if not is_integer(tp) or tp < 1:
        raise UserError(f"tensor parallelism must be a positive integer, got {tp!r}")
    if model.num_heads % tp or model.num_kv_heads % tp:
        valid = [
            k
            for k in range(1, model.num_kv_heads + 1)
            if model.num_heads % k == 0 and model.num_kv_heads % k == 0
        ]
        raise UserError(
            f"tensor parallelism {tp} does not divide {model.name}'s {model.num_heads} attention heads and "
            f"{model.num_kv_heads} KV heads; valid: {', '.join(map(str, valid))}"
        )


def get_model(name_or_path: str) -> ModelSpec:
    """A built-in model by name, or a ``config.json`` path."""
    if name_or_path in MODELS:
        return MODELS[name_or_path]
    if name_or_path.endswith(".json") or Path(name_or_path).is_file():
        return model_from_config(name_or_path)
    raise unknown("model", name_or_path, [*MODELS, "path/to/config.json"])
