"""A CPU's overlapped step replay: :mod:`blendsim.profiler.overlap_step`'s schedule on two threads.

The calling thread becomes the GEMM side, pinned to one core; an :class:`AttentionWorker` thread,
pinned to another, is the attention side; both run torch with one intra-op thread (the replayer's
setting). Between kernels both threads run a little Python, so while the replay runs the
interpreter hands the GIL over every ``SWITCH_S`` instead of every 5 ms: otherwise a side that
finished waits for the other's time slice before it can issue its next kernel.
:meth:`CpuOverlap.close` gives the calling thread its cores back and the interval its old value.
"""

from __future__ import annotations

import math
import os
import sys
import time

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.forward_pass import OPERATORS, StepReplayer, StepTiming, decode_batch, prefill_chunks
from blendsim.profiler.kernels import output_and_mlp, qkv_projection
from blendsim.profiler.overlap_step import (
    AttentionWorker,
    Schedule,
    Work,
    run_layers,
    split_nano_batches,
    two_cores,
)

SWITCH_S = 1e-4  # the interpreter's thread switch interval while a replay runs (module docstring)


class CpuOverlap:
    """The overlapped replay of one StepReplayer's steps (module docstring)."""

    def __init__(self, replayer: StepReplayer) -> None:
        self.r = replayer
        gemm_core, attn_core = two_cores()
        self._affinity = os.sched_getaffinity(0)
        self._switch = sys.getswitchinterval()
        os.sched_setaffinity(0, {gemm_core})
        sys.setswitchinterval(SWITCH_S)
        self.worker = AttentionWorker(attn_core, time.perf_counter)

    def close(self) -> None:
        self.worker.close()
        sys.setswitchinterval(self._switch)
        os.sched_setaffinity(0, self._affinity)

    def run(self, shape: BatchShape) -> StepTiming:
        r, m = self.r, self.r.model
        b, kv_len = decode_batch(shape.decode_seqs, shape.decode_kv_tokens)
        chunks = prefill_chunks(shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_seqs)
        parts = split_nano_batches(b, kv_len, chunks)
        offsets = [0]
        for nb in parts:
            offsets.append(offsets[-1] + nb.tokens)
        xs = [r.x[offsets[i] : offsets[i + 1]] for i in range(len(parts))]
        attention = [r.attention_for(nb.decodes, nb.kv_len, nb.chunks) for nb in parts]
        qkvs: dict[tuple[int, int], object] = {}
        gemm_busy = [0.0]

        def weights(layer: int) -> object:
            return r.weights[layer % len(r.weights)]

        def qkv(layer: int, i: int) -> Work:
            def work() -> None:
                qkvs[layer, i] = qkv_projection(xs[i], weights(layer))  # type: ignore[arg-type]

            return work

        def attn(layer: int, i: int) -> Work:
            decode, prefill = attention[i]

            def work() -> None:
                decode()
                prefill()

            return work

        def om(layer: int, i: int) -> Work:
            def work() -> None:
                output_and_mlp(xs[i], qkvs.pop((layer, i)), weights(layer), m)  # type: ignore[arg-type]

            return work

        def on_gemm_side(fn: Work) -> None:
            t0 = time.perf_counter()
            fn()
            gemm_busy[0] += time.perf_counter() - t0

        self.worker.busy_s = 0.0
        schedule = Schedule(on_gemm_side, self.worker.submit, self.worker.wait)
        w0 = time.perf_counter()
        run_layers(m.num_layers, len(parts), qkv, attn, om, schedule)
        t0 = time.perf_counter()
        lm_head = r.head_time(shape.decode_seqs + shape.prefill_seqs, time.perf_counter)
        end = time.perf_counter()
        ops = dict.fromkeys(OPERATORS, math.nan)
        ops.update(head=end - t0, lm_head=lm_head, sampling=end - t0 - lm_head)
        ops.update(gemm_side=gemm_busy[0], attn_side=self.worker.busy_s)
        return StepTiming(end - w0, end - w0, math.nan, ops)
