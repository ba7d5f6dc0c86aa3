"""Torch microbenchmark kernels with a model's real shapes and random weights.

Shared by the profiler (``blendsim profile``) and the executor's torch step replay. One decoder layer's
GEMMs are four matmuls as serving engines run them (fused QKV, O, fused gate/up, down); decode attention
reads a contiguous KV cache of shape (batch, kv_heads, kv_len, head_dim) with grouped queries; prefill
attention is causal over (cached context + chunk). Work is timed on a few *distinct* layers in
round-robin order, so weights and KV stream from memory as in a real forward pass instead of sitting in
a cache, and the per-layer time is scaled to all layers.

Timing: CUDA uses CUDA events (synchronised). CPU with one torch thread uses the thread's CPU time
(``time.thread_time``), which other processes on a shared machine do not inflate; with more threads,
wall time (``time.perf_counter``).
Every ``time_*`` method returns the median over repetitions, in seconds, for the whole model.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from blendsim.profiler.models import ModelSpec

MIN_STREAM_BYTES = 256 * 2**20  # distinct weights/KV cycled per timing: well above any CPU L3 / GPU L2


@dataclass(frozen=True)
class LayerWeights:
    """One decoder layer's GEMM weights, (out_features, in_features) as ``F.linear`` expects."""

    qkv: torch.Tensor
    o: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.qkv, self.o, self.gate_up, self.down))


def model_dtype(model: ModelSpec) -> torch.dtype:
    return {2: torch.bfloat16, 4: torch.float32}.get(model.dtype_bytes, torch.bfloat16)


def make_layer_weights(
    model: ModelSpec, device: str | torch.device, count: int = 1, seed: int = 0
) -> list[LayerWeights]:
    """``count`` layers of random weights (scaled so activations stay O(1)) on ``device``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    h, hd = model.hidden_size, model.head_dim
    q_w, kv_w = model.num_heads * hd, model.num_kv_heads * hd

    def rand(rows: int, cols: int) -> torch.Tensor:
        w = torch.randn(rows, cols, generator=gen) / math.sqrt(cols)
        return w.to(device=device, dtype=model_dtype(model))

    return [
        LayerWeights(
            rand(q_w + 2 * kv_w, h),
            rand(h, q_w),
            rand(2 * model.intermediate_size, h),
            rand(h, model.intermediate_size),
        )
        for _ in range(count)
    ]


def layer_gemms(x: torch.Tensor, w: LayerWeights, model: ModelSpec) -> torch.Tensor:
    """The four GEMMs of one layer on activations ``x`` (tokens, hidden); attention itself excluded."""
    return output_and_mlp(x, qkv_projection(x, w), w, model)


def qkv_projection(x: torch.Tensor, w: LayerWeights) -> torch.Tensor:
    """The layer's fused QKV GEMM: what its attention waits for."""
    return F.linear(x, w.qkv)


def output_and_mlp(x: torch.Tensor, qkv: torch.Tensor, w: LayerWeights, model: ModelSpec) -> torch.Tensor:
    """The layer's O projection and gated MLP after its attention (whose output is stood in for by
    the query part of ``qkv``: the replay times kernels, not values)."""
    attn_out = qkv[:, : model.num_heads * model.head_dim]
    h = x + F.linear(attn_out, w.o)
    gate, up = F.linear(h, w.gate_up).chunk(2, dim=-1)
    return h + F.linear(F.silu(gate) * up, w.down)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One decode token per sequence. q (B, kv_heads, group, hd); k, v (B, kv_heads, kv_len, hd).

    Grouped queries share their KV head, so K and V are read once (no expansion copy).
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v)


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = 64) -> torch.Tensor:
    """Causal attention of a chunk after cached context. q (1, heads, q_len, hd); k, v (1, kv_heads,
    ctx + q_len, hd); query i sees keys 0 .. ctx + i.

    CUDA: one SDPA call with a bottom-right causal bias (flash / memory-efficient kernels skip the
    masked tiles); K and V must already have ``heads`` heads (see ``expand_kv``).
    CPU: the chunk is processed in query blocks of ``block`` rows, each over the keys it can see, so the
    work is the causal pairs plus half a block per row, as in tiled kernels, not the full
    q x (ctx + q) rectangle that a masked CPU call computes.
    """
    q_len, kv_len = q.shape[2], k.shape[2]
    if q.device.type == "cuda":
        from torch.nn.attention.bias import causal_lower_right

        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(q_len, kv_len))
    ctx = kv_len - q_len
    outs = []
    for start in range(0, q_len, block):
        stop = min(start + block, q_len)
        keys = ctx + stop
        rows = torch.arange(start, stop, device=q.device)[:, None] + ctx
        mask = torch.arange(keys, device=q.device)[None, :] <= rows
        outs.append(
            F.scaled_dot_product_attention(
                q[:, :, start:stop], k[:, :, :keys], v[:, :, :keys], attn_mask=mask, enable_gqa=True
            )
        )
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def expand_kv(kv: torch.Tensor, heads: int) -> torch.Tensor:
    """K or V (B, kv_heads, T, hd) repeated to (B, heads, T, hd) for kernels without grouped queries."""
    return kv if kv.shape[1] == heads else kv.repeat_interleave(heads // kv.shape[1], dim=1)


def sample_tokens(logits: torch.Tensor) -> torch.Tensor:
    """Random sampling as vLLM does it: softmax, then argmax of probs / Exp(1) noise (no multinomial)."""
    probs = torch.softmax(logits, dim=-1)
    return probs.div_(torch.empty_like(probs).exponential_()).argmax(dim=-1)


class Timer:
    """Median time of a callable on a device: CUDA events, thread CPU time (CPU, 1 thread) or wall time.

    Takes ``reps`` samples after ``warmup`` calls, fewer (at least 3) when they would exceed
    ``budget_s`` in total.
    """

    def __init__(self, device: torch.device, reps: int = 7, warmup: int = 2, budget_s: float = 1.0) -> None:
        self.device, self.reps, self.warmup, self.budget_s = device, reps, warmup, budget_s
        # one torch thread computes in the calling thread: its CPU time is immune to other processes
        # competing for the cores (a shared machine), where wall time is not
        self.cpu_time = device.type == "cpu" and torch.get_num_threads() == 1

    def _sample(self, fn: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1e3
        clock = time.thread_time if self.cpu_time else time.perf_counter
        t0 = clock()
        fn()
        return clock() - t0

    def __call__(self, fn: Callable[[], object]) -> float:
        for _ in range(self.warmup):
            fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        samples = [self._sample(fn)]
        reps = max(3, min(self.reps, int(self.budget_s / max(samples[0], 1e-9))))
        samples += [self._sample(fn) for _ in range(reps - 1)]
        samples.sort()
        return samples[len(samples) // 2]


class Microbench:
    """Microbenchmarks of one model on one device. Times are for all ``model.num_layers`` layers."""

    def __init__(self, model: ModelSpec, device: str = "cpu", reps: int = 7, seed: int = 0) -> None:
        self.model = model
        self.device = torch.device(device)
        self.dtype = model_dtype(model)
        self.timer = Timer(self.device, reps=reps)
        one = model.layer_params // model.num_layers * model.dtype_bytes
        self.layers_cycled = max(1, min(model.num_layers, math.ceil(MIN_STREAM_BYTES / one)))
        self.weights = make_layer_weights(model, self.device, self.layers_cycled, seed)
        self._gen = torch.Generator(device="cpu").manual_seed(seed + 1)

    def randn(self, *shape: int) -> torch.Tensor:
        """Random values of ``shape``; large tensors tile a 1M-value random block (cheap, distinct memory)."""
        numel = math.prod(shape)
        base = torch.randn(min(numel, 1 << 20), generator=self._gen).to(device=self.device, dtype=self.dtype)
        if numel <= base.numel():
            return base.view(*shape)
        return base.repeat(math.ceil(numel / base.numel()))[:numel].view(*shape)

    def _cycled(self, layer_fns: list[Callable[[], object]]) -> float:
        """Median time of one layer, each repetition on the next distinct layer, scaled to the model.

        Between two uses of a layer, the others stream at least MIN_STREAM_BYTES through the caches,
        so every repetition reads its weights (or KV) from memory, as a real forward pass does.
        """
        turn = iter(range(1 << 62))

        def next_layer() -> None:
            layer_fns[next(turn) % len(layer_fns)]()

        return self.timer(next_layer) * self.model.num_layers

    def time_gemm(self, tokens: int) -> float:
        """The decoder-layer GEMMs of one step over ``tokens`` tokens."""
        x = self.randn(tokens, self.model.hidden_size)
        return self._cycled([functools.partial(layer_gemms, x, w, self.model) for w in self.weights])

    def decode_kv(self, batch: int, kv_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        m = self.model
        per_layer = 2 * batch * m.num_kv_heads * kv_len * m.head_dim * m.dtype_bytes
        count = max(1, min(m.num_layers, math.ceil(MIN_STREAM_BYTES / per_layer)))
        return [
            (
                self.randn(batch, m.num_kv_heads, kv_len, m.head_dim),
                self.randn(batch, m.num_kv_heads, kv_len, m.head_dim),
            )
            for _ in range(count)
        ]


def measure_peaks(
    device: str, dtype: torch.dtype = torch.bfloat16, size: int = 4096, copy_bytes: int = 512 * 2**20
) -> tuple[float, float]:
    """(FLOP/s of a large square matmul, bytes/s of a large copy counting read + write) on ``device``."""
    dev = torch.device(device)
    timer = Timer(dev, reps=3, warmup=1)
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)
    flops = 2.0 * size**3 / timer(lambda: torch.matmul(a, b))
    src = torch.empty(copy_bytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    bandwidth = 2.0 * copy_bytes / timer(lambda: dst.copy_(src))
    return flops, bandwidth
