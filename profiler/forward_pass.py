"""Step replay: run one engine step's batch on real torch kernels and time it, operator by operator.

Used twice, so that both sides time the same code: the executor's torch backend replays the
simulator's per-step batches with it, and the profiler measures its grid as forward passes of
synthetic steps (operators in the context a real pass runs them: after the layer's GEMMs, with
weights and KV streaming from memory), so the fitted model predicts exactly what the replay runs.

A simulated step is a :class:`~blendsim.profiler.cost.BatchShape` (exact, from
:mod:`blendsim.executor.step_capture`). Its replay is one forward pass of the model's decoder with
random weights (:func:`blendsim.profiler.kernels.make_layer_weights`), layer after layer:

* the layer's four GEMMs (:func:`~blendsim.profiler.kernels.layer_gemms`) over the step's
  ``prefill_tokens + decode_seqs`` tokens;
* decode attention (:func:`~blendsim.profiler.kernels.decode_attention`) of ``decode_seqs``
  sequences over a KV cache of ``decode_kv_tokens`` tokens in all. The shape keeps only the total,
  so every sequence gets the mean length ``round(kv / seqs)`` (decode attention streams the KV, its
  cost follows the total);
* prefill attention (:func:`~blendsim.profiler.kernels.prefill_attention`) of the step's chunks. The
  shape keeps the chunk count, tokens and causal pairs; the replay splits the tokens evenly over the
  chunks and gives them the common cached context that makes their causal pairs equal the shape's
  (:func:`prefill_chunks`), so the attention FLOPs are the simulated ones;
* then the LM head over the ``decode_seqs + prefill_seqs`` sequences and sampling from fp32 logits
  (:func:`~blendsim.profiler.kernels.sample_tokens`): operator ``head``, also split into ``lm_head``
  and ``sampling`` (the bf16 -> fp32 conversion of the logits and the sampling).

Memory as a real pass sees it: each layer has its own weights (the profiler's cycling count, every
layer for small models), and every layer's KV and prefill K/V are fresh slices of a ring buffer at
least twice ``MIN_STREAM_BYTES`` (and twice the largest step's per-layer KV), so no layer re-reads KV
a cache still holds, as in a real KV cache where each layer owns its blocks.

Allocator: torch on CPU takes each step's activations from malloc. glibc serves blocks above its
mmap threshold (128 KiB, adapting upwards) with fresh mappings and trims freed heap, so a step whose
activations are large pays page faults and zeroing on each allocation: 2048-token GEMMs of
SmolLM2-135M ran in 1.37 s after a few steps of that size and in 1.0 s inside the profiler's
shuffled grid, where smaller steps had raised the threshold. :func:`steady_cpu_allocator` pins both
thresholds high (once per process, CPU only), as in a long-running engine whose allocator is warm,
so profile and replay time the kernels whatever the order of their steps.

Timing: every step once (it is a replay, not a microbenchmark), after ``warmup`` untimed steps.
CPU: wall time (``perf_counter``) and, with one torch thread, the thread's CPU time, which other
processes on a shared machine do not inflate; ``clock="auto"`` picks the one the profiler's
``Timer`` uses (CPU time with one thread), so measured and predicted times come from one clock.
Per-operator times (GEMM, decode attention, prefill attention, LM head + sampling) come from the
same clock around each call. ``engine="overlap"`` replays the step as two nano-batches, GEMMs beside
attention with the real dependencies (:mod:`blendsim.profiler.overlap_step`), by wall clock on two
pinned CPU threads (:mod:`blendsim.profiler.overlap_replay`) or on two CUDA streams ordered by events
(:mod:`blendsim.profiler.cuda_step`, CUDA events); per-operator times are then not separable (NaN).
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.kernels import (
    MIN_STREAM_BYTES,
    Microbench,
    decode_attention,
    layer_gemms,
    prefill_attention,
    sample_tokens,
)
from blendsim.profiler.models import ModelSpec

if TYPE_CHECKING:
    from blendsim.profiler.overlap_replay import CpuOverlap

OPERATORS = ("gemm", "decode_attn", "prefill_attn", "head")  # the step's split (head = LM head + sampling)
CLOCKS = ("auto", "wall", "cpu")


@dataclass(frozen=True)
class StepTiming:
    """One replayed step. ``step_s`` is on the chosen clock; ``wall_s`` always wall time;
    ``cpu_s`` the thread's CPU time (NaN on CUDA). ``ops`` maps OPERATORS to seconds (NaN when
    not separable)."""

    step_s: float
    wall_s: float
    cpu_s: float
    ops: dict[str, float]


def decode_batch(seqs: int, kv_tokens: int) -> tuple[int, int]:
    """(batch, KV length per sequence) with the step's total KV: every sequence at the mean length."""
    if seqs <= 0 or kv_tokens <= 0:
        return 0, 0
    return seqs, max(1, round(kv_tokens / seqs))


def prefill_chunks(tokens: int, pairs: float, seqs: int) -> list[tuple[int, int]]:
    """(q_len, cached context) chunks with ``tokens`` tokens in all over ``min(seqs, tokens)`` chunks
    of nearly equal length and one common context ``c`` solving sum q_i c + q_i (q_i + 1) / 2 =
    ``pairs`` (rounded; never negative: an even split has the fewest self pairs)."""
    k = min(seqs, tokens)
    if k <= 0:
        return []
    base, extra = divmod(tokens, k)
    qs = [base + 1] * extra + [base] * (k - extra)
    self_pairs = sum(q * (q + 1) / 2 for q in qs)
    ctx = max(0, round((pairs - self_pairs) / tokens))
    return [(q, ctx) for q in qs]


class Ring:
    """A flat buffer handing out contiguous slices in order, wrapping to the start when the next
    slice does not fit. A byte is re-read only after at least half the buffer was handed out."""

    def __init__(self, numel: int, bench: Microbench) -> None:
        self.buf = bench.randn(numel)
        self.cursor = 0

    def take(self, *shape: int) -> torch.Tensor:
        numel = math.prod(shape)
        if numel > self.buf.numel():
            raise RuntimeError(f"ring of {self.buf.numel()} values cannot hold {numel}")
        if self.cursor + numel > self.buf.numel():
            self.cursor = 0
        out = self.buf[self.cursor : self.cursor + numel].view(*shape)
        self.cursor += numel
        return out


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest accepted mmap threshold on 64-bit
_allocator_pinned: bool | None = None


def steady_cpu_allocator() -> bool:
    """Keep large CPU activations on the heap and the freed heap mapped (module docstring); True
    when glibc accepted it (False elsewhere, e.g. musl or macOS: then nothing changes)."""
    global _allocator_pinned
    if _allocator_pinned is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            _allocator_pinned = bool(
                libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
            )
        except (OSError, AttributeError):
            _allocator_pinned = False
    return _allocator_pinned


class StepReplayer:
    """Buffers sized for the largest of the given shapes, and the replay of one step."""

    def __init__(
        self,
        model: ModelSpec,
        shapes: list[BatchShape],
        device: str = "cpu",
        seed: int = 0,
        clock: str = "auto",
    ) -> None:
        if clock not in CLOCKS:
            raise UserError(f"unknown clock {clock!r}; valid: {', '.join(CLOCKS)}")
        self.model = model
        if not str(device).startswith("cuda"):
            steady_cpu_allocator()
        self.bench = Microbench(model, device, seed=seed)
        self.device = self.bench.device
        self.cuda = self.device.type == "cuda"
        one_thread = torch.get_num_threads() == 1
        self.use_cpu_clock = not self.cuda and (clock == "cpu" or (clock == "auto" and one_thread))
        m = model
        self._prefill_heads = m.num_heads if self.cuda else m.num_kv_heads  # CUDA SDPA: expanded K/V
        max_tokens = max((s.prefill_tokens + s.decode_seqs for s in shapes), default=1)
        max_seqs = max((s.decode_seqs + s.prefill_seqs for s in shapes), default=1)
        kv_elems = max((self._kv_elems(s) for s in shapes), default=0)
        min_ring = 2 * MIN_STREAM_BYTES // m.dtype_bytes
        self.ring = Ring(max(min_ring, 2 * kv_elems), self.bench)
        self.x = self.bench.randn(max(max_tokens, max_seqs), m.hidden_size)
        self.q = self.bench.randn(max(max_tokens * m.num_heads * m.head_dim, 1))
        self.lm_head = self.bench.randn(m.vocab_size, m.hidden_size)
        self.weights = self.bench.weights
        self._overlap: CpuOverlap | None = None  # the CPU's overlapped replay, made on first use
        if self.cuda:
            self.streams = (torch.cuda.Stream(self.device), torch.cuda.Stream(self.device))

    def _kv_elems(self, s: BatchShape) -> int:
        """K and V values one layer of this step reads (decode cache plus prefill chunks)."""
        m = self.model
        b, kv_len = decode_batch(s.decode_seqs, s.decode_kv_tokens)
        pre = sum(q + c for q, c in prefill_chunks(s.prefill_tokens, s.prefill_attn_pairs, s.prefill_seqs))
        return 2 * m.head_dim * (b * kv_len * m.num_kv_heads + pre * self._prefill_heads)

    # ---- the work of one layer, split by operator ----

    def attention_work(self, shape: BatchShape) -> tuple[Callable[[], None], Callable[[], None]]:
        """(decode attention, prefill attention) of one layer, each on fresh KV from the ring."""
        b, kv_len = decode_batch(shape.decode_seqs, shape.decode_kv_tokens)
        chunks = prefill_chunks(shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_seqs)
        return self.attention_for(b, kv_len, chunks)

    def attention_for(
        self, b: int, kv_len: int, chunks: Sequence[tuple[int, int]]
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        """(decode attention of ``b`` sequences of ``kv_len`` KV tokens, prefill attention of
        ``chunks``) of one layer, each on fresh KV from the ring."""
        m = self.model
        group = m.num_heads // m.num_kv_heads

        def decode() -> None:
            if b:
                k = self.ring.take(b, m.num_kv_heads, kv_len, m.head_dim)
                v = self.ring.take(b, m.num_kv_heads, kv_len, m.head_dim)
                decode_attention(
                    self.q[: b * m.num_heads * m.head_dim].view(b, m.num_kv_heads, group, m.head_dim), k, v
                )

        def prefill() -> None:
            for q_len, ctx in chunks:
                q = self.q[: q_len * m.num_heads * m.head_dim].view(1, m.num_heads, q_len, m.head_dim)
                k = self.ring.take(1, self._prefill_heads, ctx + q_len, m.head_dim)
                v = self.ring.take(1, self._prefill_heads, ctx + q_len, m.head_dim)
                prefill_attention(q, k, v)

        return decode, prefill

    def head_time(self, seqs: int, clock: Callable[[], float] | None = None) -> float:
        """LM head then sampling over ``seqs`` sequences; returns the LM head's share on ``clock``."""
        if not seqs:
            return 0.0
        t0 = clock() if clock else 0.0
        logits = F.linear(self.x[:seqs], self.lm_head)
        t1 = clock() if clock else 0.0
        sample_tokens(logits.float())
        return t1 - t0

    # ---- one step ----

    def run(self, shape: BatchShape, engine: str = "serial", split: bool = True) -> StepTiming:
        """Replay ``shape`` once and time it (module docstring); ``engine="overlap"`` runs it as two
        nano-batches whose GEMMs and attention run at once (:mod:`blendsim.profiler.overlap_step`),
        or, with ``split`` False (a step the engine runs whole), serially on the same wall clock."""
        if self.cuda:
            from blendsim.profiler.cuda_step import run_cuda

            return run_cuda(self, shape, engine if split else "serial")
        if engine == "overlap":
            if self._overlap is None:
                from blendsim.profiler.overlap_replay import CpuOverlap

                self._overlap = CpuOverlap(self)
            if not split:
                t = self._run_cpu(shape)
                return StepTiming(t.wall_s, t.wall_s, t.cpu_s, t.ops)
            return self._overlap.run(shape)
        return self._run_cpu(shape)

    def close(self) -> None:
        """Stop the overlapped replay's worker thread (and give the calling thread its cores back)."""
        if self._overlap is not None:
            self._overlap.close()
            self._overlap = None

    def _run_cpu(self, shape: BatchShape) -> StepTiming:
        m = self.model
        n = shape.prefill_tokens + shape.decode_seqs
        x = self.x[:n]
        decode, prefill = self.attention_work(shape)
        clock = time.thread_time if self.use_cpu_clock else time.perf_counter
        ops = dict.fromkeys(OPERATORS, 0.0)
        w0, c0 = time.perf_counter(), time.thread_time()
        for layer in range(m.num_layers):
            t0 = clock()
            if n:
                layer_gemms(x, self.weights[layer % len(self.weights)], m)
            t1 = clock()
            decode()
            t2 = clock()
            prefill()
            t3 = clock()
            ops["gemm"] += t1 - t0
            ops["decode_attn"] += t2 - t1
            ops["prefill_attn"] += t3 - t2
        t0 = clock()
        ops["lm_head"] = self.head_time(shape.decode_seqs + shape.prefill_seqs, clock)
        ops["head"] = clock() - t0
        ops["sampling"] = ops["head"] - ops["lm_head"]
        wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
        return StepTiming(cpu if self.use_cpu_clock else wall, wall, cpu, ops)
