"""The overlapping engine's step on real kernels: two nano-batches, their GEMMs beside their attention.

A step's batch splits into nano-batches A and B (:func:`split_nano_batches`: decode sequences
halved, prefill chunks divided by tokens). One side runs every decoder-layer GEMM, the other every
attention, layer by layer with the real dependencies: a nano-batch's attention needs its own QKV
projection, and its O projection and MLP (``OM``) need its attention. B runs half a layer behind A,
so each attention hides behind half a layer of the other nano-batch's GEMMs (:func:`run_layers`):

    GEMM side:       QKV_A(l)  OM_B(l-1)  QKV_B(l)  OM_A(l)  QKV_A(l+1)  OM_B(l) ...
    attention side:            attn_A(l)            attn_B(l)            attn_A(l+1) ...

On a CPU the GEMM side is the calling thread and the attention side a worker thread
(:class:`AttentionWorker`), each pinned to its own core with one torch intra-op thread (torch's
kernels release the GIL while they run); on a GPU the two sides are two streams ordered by events.
The LM head and sampling run after the last layer. The step is timed by wall clock from its first
GEMM to the end of sampling: thread CPU time cannot see overlap.

Invariant (tests): no attention starts before its nano-batch's QKV projection of the same layer
ended, and no OM starts before its nano-batch's attention of that layer ended.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from blendsim.errors import UserError


@dataclass(frozen=True)
class NanoBatch:
    """One nano-batch's work in every layer: its decode sequences (each with ``kv_len`` KV tokens)
    and its prefill chunks ``(tokens, context before them)``."""

    decodes: int
    kv_len: int
    chunks: tuple[tuple[int, int], ...] = ()

    @property
    def tokens(self) -> int:
        return self.decodes + sum(q for q, _ in self.chunks)


def split_nano_batches(decodes: int, kv_len: int, chunks: list[tuple[int, int]]) -> list[NanoBatch]:
    """Split a step into two nano-batches: A gets the larger half of the decode sequences, and the
    prefill chunks are divided at half the prefill tokens, a chunk that straddles it cut in two (the
    second part's context grows by the first's tokens, so the causal pairs are kept). A step of one
    token stays one nano-batch; an empty half is dropped."""
    tokens = sum(q for q, _ in chunks)
    if decodes + tokens <= 1:
        return [NanoBatch(decodes, kv_len, tuple(chunks))]
    # A's prefill tokens bring it to half of all the GEMM tokens (rounded up), beside its decodes
    half = min(max((decodes + tokens + 1) // 2 - (decodes + 1) // 2, 0), tokens)
    first: list[tuple[int, int]] = []
    second: list[tuple[int, int]] = []
    taken = 0
    for q, ctx in chunks:
        if taken >= half:
            second.append((q, ctx))
        elif taken + q <= half:
            first.append((q, ctx))
        else:
            cut = half - taken
            first.append((cut, ctx))
            second.append((q - cut, ctx + cut))
        taken += q
    a = NanoBatch((decodes + 1) // 2, kv_len, tuple(first))
    b = NanoBatch(decodes // 2, kv_len, tuple(second))
    return [nb for nb in (a, b) if nb.tokens]


# ---------------------------------------------------------------------- the layer schedule
Work = Callable[[], None]


@dataclass
class Schedule:
    """How one side's work is issued: ``gemm(fn)`` runs GEMM work in order on the GEMM side,
    ``attention(fn)`` issues attention work on the other side and returns something ``wait`` blocks
    (or orders) the GEMM side on; ``trace`` (tests) records ``(event, layer, nano-batch)``."""

    gemm: Callable[[Work], None]
    attention: Callable[[Work], object]
    wait: Callable[[object], None]
    trace: list[tuple[str, int, int]] | None = field(default=None)


def run_layers(
    layers: int,
    nano: int,
    qkv: Callable[[int, int], Work],
    attn: Callable[[int, int], Work],
    om: Callable[[int, int], Work],
    s: Schedule,
) -> None:
    """Issue every layer's work for ``nano`` (1 or 2) nano-batches in the staggered order of the
    module docstring; ``qkv(layer, i)``, ``attn(layer, i)`` and ``om(layer, i)`` make the work."""
    if nano == 1:  # nothing to overlap with: the layer in order, all on the GEMM side
        for layer in range(layers):
            s.gemm(qkv(layer, 0))
            s.gemm(attn(layer, 0))
            s.gemm(om(layer, 0))
        return
    pending_b: object = None
    for layer in range(layers):
        s.gemm(qkv(layer, 0))
        done_a = s.attention(attn(layer, 0))
        if layer:
            s.wait(pending_b)
            s.gemm(om(layer - 1, 1))
        s.gemm(qkv(layer, 1))
        pending_b = s.attention(attn(layer, 1))
        s.wait(done_a)
        s.gemm(om(layer, 0))
    s.wait(pending_b)
    s.gemm(om(layers - 1, 1))


# ---------------------------------------------------------------------- CPU: a worker thread
class AttentionWorker:
    """A thread pinned to one core that runs the attention work handed to it, in order; ``submit``
    returns an event set when that work is done. ``busy_s`` adds up the wall time of its work."""

    def __init__(self, core: int | None, clock: Callable[[], float]) -> None:
        self._jobs: queue.SimpleQueue[tuple[Work, threading.Event] | None] = queue.SimpleQueue()
        self._core, self._clock = core, clock
        self.busy_s = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="blendsim-attention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self._core is not None:
            os.sched_setaffinity(0, {self._core})  # the calling thread, on Linux
        while (job := self._jobs.get()) is not None:
            fn, done = job
            t0 = self._clock()
            try:
                fn()
            except BaseException as exc:  # handed back to the GEMM side at its next wait
                self.error = exc
            self.busy_s += self._clock() - t0
            done.set()

    def submit(self, fn: Work) -> threading.Event:
        done = threading.Event()
        self._jobs.put((fn, done))
        return done

    def wait(self, done: object) -> None:
        assert isinstance(done, threading.Event)
        done.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


def two_cores() -> tuple[int, int]:
    """Two cores of this process's affinity set (the GEMM side's, the attention side's); UserError
    on a machine with one."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise UserError("the overlapped replay needs two CPU cores (one per side); this process has one")
    return cores[0], cores[1]
