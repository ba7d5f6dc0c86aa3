"""Exact work counts of a model's operators: FLOPs and bytes per token, sequence, query-key pair or KV
token (used by the step model, the CLI's cost report, the figures and the tests)."""

from __future__ import annotations

from blendsim.profiler.models import ModelSpec


def layer_gemm_flops(model: ModelSpec, tokens: float) -> float:
    """FLOPs of the decoder-layer GEMMs (QKV, O, gated MLP, all layers) over ``tokens`` tokens."""
    return 2.0 * model.layer_params * tokens


def lm_head_flops(model: ModelSpec, seqs: float) -> float:
    return 2.0 * model.lm_head_params * seqs


def prefill_attn_flops(model: ModelSpec, pairs: float) -> float:
    """Causal attention FLOPs: 4 x layers x heads x head_dim per query-key pair."""
    return 4.0 * model.num_layers * model.num_heads * model.head_dim * pairs


def decode_kv_bytes(model: ModelSpec, kv_tokens: float) -> float:
    return float(model.kv_bytes_per_token) * kv_tokens


def layer_weight_bytes(model: ModelSpec) -> float:
    return float(model.layer_params * model.dtype_bytes)


def lm_head_weight_bytes(model: ModelSpec) -> float:
    return float(model.lm_head_params * model.dtype_bytes)


def allreduce_bytes_per_token(model: ModelSpec, tp: int) -> float:
    """Bytes each GPU moves per token per step: 2 ring all-reduces per layer of hidden x dtype."""
    if tp <= 1:
        return 0.0
    return 2.0 * model.num_layers * 2.0 * (tp - 1) / tp * model.hidden_size * model.dtype_bytes
