"""A StepReplayer's step on a GPU, timed with CUDA events.

``serial``: each layer's GEMMs, decode attention and prefill attention in order on the current
stream, each operator between two events. ``overlap``: :mod:`blendsim.profiler.overlap_step`'s
two nano-batches, the GEMM side on one stream and the attention side on another, each nano-batch's
attention ordered after its QKV projection and its O projection and MLP after its attention by
events, so the overlap measured is the one the dependencies allow, not that of independent work;
per-operator times are then not separable (NaN). The LM head and sampling follow on the current
stream either way.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.kernels import layer_gemms, output_and_mlp, qkv_projection, sample_tokens
from blendsim.profiler.overlap_step import Schedule, Work, run_layers, split_nano_batches

if TYPE_CHECKING:
    from blendsim.profiler.forward_pass import StepReplayer, StepTiming


def _event() -> torch.cuda.Event:
    e = torch.cuda.Event(enable_timing=True)
    e.record()
    return e


def run_cuda(r: StepReplayer, shape: BatchShape, engine: str) -> StepTiming:
    """Replay ``shape`` once on the replayer's GPU (module docstring)."""
    from blendsim.profiler.forward_pass import StepTiming, decode_batch, prefill_chunks

    main = torch.cuda.current_stream(r.device)
    w0 = time.perf_counter()
    start = _event()
    if engine == "overlap":
        b, kv_len = decode_batch(shape.decode_seqs, shape.decode_kv_tokens)
        chunks = prefill_chunks(shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_seqs)
        _overlapped_layers(r, b, kv_len, chunks, main)
        ops = {"gemm": math.nan, "decode_attn": math.nan, "prefill_attn": math.nan}
    else:
        ops = _serial_layers(r, shape)
    h = _event()
    seqs = shape.decode_seqs + shape.prefill_seqs
    logits = F.linear(r.x[:seqs], r.lm_head) if seqs else None
    mid = _event()
    if logits is not None:
        sample_tokens(logits.float())
    end = _event()
    end.synchronize()
    wall = time.perf_counter() - w0
    ops.update(
        head=h.elapsed_time(end) / 1e3,
        lm_head=h.elapsed_time(mid) / 1e3,
        sampling=mid.elapsed_time(end) / 1e3,
    )
    return StepTiming(start.elapsed_time(end) / 1e3, wall, math.nan, ops)


def _serial_layers(r: StepReplayer, shape: BatchShape) -> dict[str, float]:
    m = r.model
    n = shape.prefill_tokens + shape.decode_seqs
    x = r.x[:n]
    decode, prefill = r.attention_work(shape)
    marks = []
    for layer in range(m.num_layers):
        a = _event()
        if n:
            layer_gemms(x, r.weights[layer % len(r.weights)], m)
        b = _event()
        decode()
        c = _event()
        prefill()
        marks.append((a, b, c, _event()))
    return {
        "gemm": sum(a.elapsed_time(b) for a, b, _, _ in marks) / 1e3,
        "decode_attn": sum(b.elapsed_time(c) for _, b, c, _ in marks) / 1e3,
        "prefill_attn": sum(c.elapsed_time(d) for _, _, c, d in marks) / 1e3,
    }


def _overlapped_layers(
    r: StepReplayer, b: int, kv_len: int, chunks: list[tuple[int, int]], main: torch.cuda.Stream
) -> None:
    m = r.model
    parts = split_nano_batches(b, kv_len, chunks)
    offsets = [0]
    for nb in parts:
        offsets.append(offsets[-1] + nb.tokens)
    xs = [r.x[offsets[i] : offsets[i + 1]] for i in range(len(parts))]
    attention = [r.attention_for(nb.decodes, nb.kv_len, nb.chunks) for nb in parts]
    s_gemm, s_attn = r.streams
    s_gemm.wait_stream(main)
    s_attn.wait_stream(main)
    qkvs: dict[tuple[int, int], torch.Tensor] = {}

    def qkv(layer: int, i: int) -> Work:
        def work() -> None:
            qkvs[layer, i] = qkv_projection(xs[i], r.weights[layer % len(r.weights)])

        return work

    def attn(layer: int, i: int) -> Work:
        decode, prefill = attention[i]
        return lambda: (decode(), prefill(), None)[-1]

    def om(layer: int, i: int) -> Work:
        return lambda: (
            output_and_mlp(xs[i], qkvs.pop((layer, i)), r.weights[layer % len(r.weights)], m),
            None,
        )[-1]

    def on_gemm_stream(fn: Work) -> None:
        with torch.cuda.stream(s_gemm):
            fn()

    def on_attn_stream(fn: Work) -> torch.cuda.Event:
        s_attn.wait_event(_recorded(s_gemm))  # after the GEMM side's work so far (its QKV)
        with torch.cuda.stream(s_attn):
            fn()
        return _recorded(s_attn)

    run_layers(
        m.num_layers,
        len(parts),
        qkv,
        attn,
        om,
        Schedule(on_gemm_stream, on_attn_stream, lambda e: s_gemm.wait_event(e)),  # type: ignore[arg-type]
    )
    main.wait_stream(s_gemm)
    main.wait_stream(s_attn)


def _recorded(stream: torch.cuda.Stream) -> torch.cuda.Event:
    e = torch.cuda.Event()
    e.record(stream)
    return e
