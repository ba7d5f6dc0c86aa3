"""StepRecorder: each step of one replica recorded exactly enough to rebuild it, and its admissions.

Per step (:data:`STEP_COLUMNS`): its end time; the prefill tokens, chunks and causal attention pairs
it ran; its decode count (one token each) and the KV tokens they read; the requests running and the
KV in use when it ran; the step model's compute, memory and total time; and the prefill cap the
policy set (-1: none). Per prefill chunk (:data:`CHUNK_COLUMNS`): the step, the request, its tokens
and its context (the tokens before it: cached prefix and earlier chunks). A step's
``BatchShape(prefill_tokens, prefill_attn_pairs, decode_tokens, decode_kv_tokens, prefill_seqs)``
is what the step model priced; its chunks give the same tokens and pairs request by request. Per
first admission (:data:`ADMISSION_COLUMNS`): the request, its side, the step that could first
schedule it, that step's start time and the prompt tokens its cache hit skipped.

Steps are kept in one flat ``array('d')`` (one ``extend`` per step; every integer recorded is below
2**53, so it is exact), chunks and admissions in ``array('q')``; :meth:`columns` turns them into
numpy columns once, at the end of the run.
"""

from __future__ import annotations

from array import array

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
)
_FLOAT = {"time", "compute_s", "memory_s", "step_s", "prefill_attn_pairs"}
STEP_COLUMNS = ("replica", "step", *_RECORDED)
CHUNK_COLUMNS = ("replica", "step", "position", "tokens", "context")
ADMISSION_COLUMNS = ("position", "side", "replica", "step", "time", "cached_tokens")


class StepRecorder:
    """The record of one replica (module docstring)."""

    def __init__(self) -> None:
        self._steps = array("d")
        self.chunk_log = array("q")  # step, position, tokens, context per chunk (PrefillQueue.take)
        self._admitted = array("q")  # position, side, step, cached tokens per first admission
        self._admitted_time = array("d")

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
        self._steps.extend(
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
            )
        )

    def admission(self, pos: int, side: int, step: int, time: float, cached_tokens: int) -> None:
        self._admitted.extend((pos, side, step, cached_tokens))
        self._admitted_time.append(time)

    @property
    def admitted_positions(self) -> np.ndarray:
        """First-admitted positions, in admission order."""
        return np.frombuffer(self._admitted, dtype=np.int64).reshape(-1, 4)[:, 0].copy()

    def columns(self, replica: int, block_size: int) -> dict[str, dict[str, np.ndarray]]:
        """``{"steps": ..., "chunks": ..., "admission": ...}``, each a mapping of its columns."""
        flat = np.frombuffer(self._steps, dtype=np.float64).reshape(-1, len(_RECORDED))
        n = len(flat)
        steps: dict[str, np.ndarray] = {
            "replica": np.full(n, replica, dtype=np.int32),
            "step": np.arange(1, n + 1, dtype=np.int64),
        }
        for j, name in enumerate(_RECORDED):
            col = flat[:, j]
            steps[name] = col.copy() if name in _FLOAT else col.astype(np.int64)
        steps["kv_used_tokens"] *= block_size
        chunk = np.frombuffer(self.chunk_log, dtype=np.int64).reshape(-1, 4)
        chunks = {"replica": np.full(len(chunk), replica, dtype=np.int32)}
        chunks.update({k: chunk[:, j].copy() for j, k in enumerate(CHUNK_COLUMNS[1:])})
        adm = np.frombuffer(self._admitted, dtype=np.int64).reshape(-1, 4)
        admission = {
            "position": adm[:, 0].copy(),
            "side": adm[:, 1].astype(np.int8),
            "replica": np.full(len(adm), replica, dtype=np.int32),
            "step": adm[:, 2].copy(),
            "time": np.frombuffer(self._admitted_time, dtype=np.float64).copy(),
            "cached_tokens": adm[:, 3].copy(),
        }
        return {"steps": steps, "chunks": chunks, "admission": admission}
