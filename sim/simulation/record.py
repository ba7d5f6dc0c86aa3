"""StepRecorder: each step of one replica recorded exactly enough to rebuild it, and its admissions.

Per step (:data:`STEP_COLUMNS`): the replica and its role (:data:`ROLES`: colocated, or prefill or
decode in a disaggregated layout); its end time; the prefill tokens, chunks and causal attention pairs
it ran; its decode count (one token each) and the KV tokens they read; the requests running and the
KV in use when it ran; the step model's compute, memory and total time; and the prefill cap the
policy set (-1: none). Per prefill chunk (:data:`CHUNK_COLUMNS`): the step, the request, its tokens
and its context (the tokens before it: cached prefix and earlier chunks). A step's
``BatchShape(prefill_tokens, prefill_attn_pairs, decode_tokens, decode_kv_tokens, prefill_seqs)``
is what the step model priced; its chunks give the same tokens and pairs request by request. Per
first admission (:data:`ADMISSION_COLUMNS`): the request, its side, the step that could first
schedule it, that step's start time and the prompt tokens its cache hit skipped.

Rows are appended as tuples to plain lists (the cheapest record a step can make) and packed into
numpy blocks every :data:`FLUSH_ROWS` steps, so memory stays that of the numbers; steps are float64
(every integer recorded is below 2**53, so it is exact), chunks and admissions int64. :meth:`columns`
joins the blocks into columns once, at the end of the run.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from blendsim.profiler.cost import StepTime

# recorded per step, in this order; kv_used is in blocks until columns() scales it to tokens
_RECORDED = (
    "time",
    "prefill_tokens",
    "decode_tokens",
    "running",
    "kv_used_tokens",
    "compute_s",
    "memory_s",
    "step_s",
    "prefill_cap",
    "prefill_seqs",
    "prefill_attn_pairs",
    "decode_kv_tokens",
    "overhead_s",
)
_FLOAT = {"time", "compute_s", "memory_s", "step_s", "prefill_attn_pairs", "overhead_s"}
STEP_COLUMNS = ("replica", "role", "step", *_RECORDED)
CHUNK_COLUMNS = ("replica", "step", "position", "tokens", "context")
ADMISSION_COLUMNS = ("position", "side", "replica", "step", "time", "cached_tokens")


FLUSH_ROWS = 4096  # steps between packings of the row lists into numpy blocks
ROLES = ("colocated", "prefill", "decode")  # a replica's role, the steps' ``role`` code
COLOCATED, PREFILL, DECODE = 0, 1, 2


class _Rows:
    """Tuples of one width, appended to ``rows`` and packed into ``dtype`` blocks by :meth:`pack`."""

    def __init__(self, width: int, dtype: type) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self._blocks: list[np.ndarray] = []
        self._width, self._dtype = width, dtype

    def pack(self) -> None:
        rows = self.rows
        if rows:
            flat: np.ndarray = np.fromiter(
                chain.from_iterable(rows), dtype=self._dtype, count=len(rows) * self._width
            )
            self._blocks.append(flat.reshape(-1, self._width))
            self.rows = []

    def array(self) -> np.ndarray:
        self.pack()
        if not self._blocks:
            return np.zeros((0, self._width), dtype=self._dtype)
        return np.concatenate(self._blocks)


class StepRecorder:
    """The record of one replica (module docstring). ``chunk_log`` takes ``(step, position, tokens,
    context)`` per chunk (:meth:`PrefillQueue.take`)."""

    def __init__(self, role: int = COLOCATED) -> None:
        self.role = role
        self._steps = _Rows(len(_RECORDED), np.float64)
        self._chunks = _Rows(4, np.int64)
        self.chunk_log = self._chunks.rows
        self._admitted = _Rows(4, np.int64)  # position, side, step, cached tokens per first admission
        self._admitted_time: list[float] = []

    def step(
        self,
        now: float,
        prefill: tuple[int, float, int],
        decodes: tuple[int, int],
        running: int,
        kv_used_blocks: int,
        st: StepTime,
        cap: int | None,
    ) -> None:
        """One step that ended at ``now``: ``prefill`` (tokens, pairs, chunks) and ``decodes``
        (count, KV read) as priced by ``st``."""
        tokens, pairs, seqs = prefill
        rows = self._steps.rows
        rows.append(
            (
                now,
                tokens,
                decodes[0],
                running,
                kv_used_blocks,
                st.compute_s,
                st.memory_s,
                st.total_s,
                -1 if cap is None else cap,
                seqs,
                pairs,
                decodes[1],
                st.overhead_s,
            )
        )
        if len(rows) >= FLUSH_ROWS:
            self._steps.pack()
            self._chunks.pack()
            self.chunk_log = self._chunks.rows
            self._admitted.pack()

    def admission(self, pos: int, side: int, step: int, time: float, cached_tokens: int) -> None:
        self._admitted.rows.append((pos, side, step, cached_tokens))
        self._admitted_time.append(time)

    @property
    def admitted_positions(self) -> np.ndarray:
        """First-admitted positions, in admission order."""
        return self._admitted.array()[:, 0].copy()

    def columns(self, replica: int, block_size: int) -> dict[str, dict[str, np.ndarray]]:
        """``{"steps": ..., "chunks": ..., "admission": ...}``, each a mapping of its columns."""
        flat = self._steps.array()
        n = len(flat)
        steps: dict[str, np.ndarray] = {
            "replica": np.full(n, replica, dtype=np.int32),
            "role": np.full(n, self.role, dtype=np.int8),
            "step": np.arange(1, n + 1, dtype=np.int64),
        }
        for j, name in enumerate(_RECORDED):
            col = flat[:, j]
            steps[name] = col.copy() if name in _FLOAT else col.astype(np.int64)
        steps["kv_used_tokens"] *= block_size
        chunk = self._chunks.array()
        chunks = {"replica": np.full(len(chunk), replica, dtype=np.int32)}
        chunks.update({k: chunk[:, j].copy() for j, k in enumerate(CHUNK_COLUMNS[1:])})
        adm = self._admitted.array()
        admission = {
            "position": adm[:, 0].copy(),
            "side": adm[:, 1].astype(np.int8),
            "replica": np.full(len(adm), replica, dtype=np.int32),
            "step": adm[:, 2].copy(),
            "time": np.asarray(self._admitted_time, dtype=np.float64),
            "cached_tokens": adm[:, 3].copy(),
        }
        return {"steps": steps, "chunks": chunks, "admission": admission}
