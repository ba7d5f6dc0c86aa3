"""Request-level cost (paper E3, E4, E6) and the step-level contract with the simulator.

Request level, for planning and trace statistics:
    Comp(r) = 2 (p + d) P / F
    Mem(r)  = (p d + d^2 / 2) kv_bytes_per_token / BW
    density of a set = (sum Comp - saved) / sum Mem, a ratio of sums, where ``saved`` is the GEMM
    time of prompt tokens served from the prefix cache.
All functions accept scalars or numpy arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec

ArrayLike = npt.ArrayLike


def comp_time(prompt_len: ArrayLike, output_len: ArrayLike, model: ModelSpec, hw: HardwareSpec) -> np.ndarray:
    """E3 without prefill attention: every token through the GEMMs costs 2P FLOPs."""
    tokens = np.asarray(prompt_len, dtype=np.float64) + np.asarray(output_len, dtype=np.float64)
    return tokens * (2.0 * model.params / hw.peak_flops)


def mem_time(prompt_len: ArrayLike, output_len: ArrayLike, model: ModelSpec, hw: HardwareSpec) -> np.ndarray:
    """E4: decode attention reads (p + i) tokens of KV at decode step i, summed as p d + d^2 / 2."""
    p = np.asarray(prompt_len, dtype=np.float64)
    d = np.asarray(output_len, dtype=np.float64)
    return (p * d + 0.5 * d * d) * (model.kv_bytes_per_token / hw.mem_bandwidth)


def token_comp_time(model: ModelSpec, hw: HardwareSpec) -> float:
    """GEMM time of one token at peak: the unit in which shared (saved) tokens are priced."""
    return 2.0 * model.params / hw.peak_flops


def set_density(
    prompt_len: ArrayLike,
    output_len: ArrayLike,
    model: ModelSpec,
    hw: HardwareSpec,
    saved_tokens: float = 0.0,
) -> float:
    """E6 as a ratio of sums: (sum Comp - saved tokens' GEMM time) / sum Mem."""
    comp = float(np.sum(comp_time(prompt_len, output_len, model, hw)))
    mem = float(np.sum(mem_time(prompt_len, output_len, model, hw)))
    comp -= saved_tokens * token_comp_time(model, hw)
    return comp / mem if mem > 0 else float("inf")


class BatchShape(NamedTuple):
    """What one engine step computes, in the aggregate form the simulator keeps incrementally
    (immutable; a named tuple because the simulator makes one per step).

    prefill_tokens: prompt tokens computed this step (cache hits excluded).
    prefill_attn_pairs: causal query-key pairs of the prefill chunks, sum over chunks of
        q * cached + q * (q + 1) / 2, where ``cached`` counts tokens before the chunk.
    decode_seqs: requests producing one output token this step.
    decode_kv_tokens: sum of their KV lengths (tokens read by decode attention).
    """

    prefill_tokens: int = 0
    prefill_attn_pairs: float = 0.0
    decode_seqs: int = 0
    decode_kv_tokens: int = 0
    prefill_seqs: int = 0  # chunks in the step (each samples no token unless it ends its prompt)

    @property
    def gemm_tokens(self) -> int:
        return self.prefill_tokens + self.decode_seqs


class StepTime(NamedTuple):
    """Predicted time of one step, split as the composition saw it."""

    compute_s: float  # GEMMs and prefill attention
    memory_s: float  # decode attention (KV read)
    overhead_s: float  # fixed per step plus per sequence
    total_s: float
