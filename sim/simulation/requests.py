"""RequestTable: every request of a trace, by position, and where each one is in its life.

What a request *is* never changes: its prompt length ``p``, true output length ``d``, the estimate
``d_hat`` the planner priced it with (at least 1) and its segment path (ids and lengths, root
first: the radix cache's key). With ``private_prompts`` a prompt is one segment of its own (id:
its position), so no two requests share prefix KV (a decode replica's table: :mod:`.roles`).
Where it *is* changes as it runs:

* ``gen``: output tokens sampled so far (0 until its first prefill ends; it keeps what it had
  generated across a preemption, which is recomputed at re-admission);
* ``seq``: its latest admission's sequence number, increasing over the engine's life (0: never
  admitted), so the newest running request is the one with the largest;
* ``est_end`` / ``est_final``: the step its estimated output ends and the KV tokens it holds then
  (prompt plus estimated output), set at admission and made exact when its decode starts;
* ``finished_len``: its output length when it finished (-1 while it has not).

Invariant: ``0 <= gen[pos] <= d[pos]``; ``finished_len[pos]`` is -1 or ``d[pos]``, and set once.
"""

from __future__ import annotations

import numpy as np

from blendsim.traces.trace import Trace


class RequestTable:
    """The requests of one trace, positions ``0 .. n-1`` (module docstring)."""

    def __init__(self, trace: Trace, est_output: np.ndarray, *, private_prompts: bool = False) -> None:
        n = len(trace)
        self.p: list[int] = trace.prompt_len.tolist()
        self.d: list[int] = trace.output_len.tolist()
        self.d_hat: list[int] = np.maximum(np.asarray(est_output, dtype=np.int64), 1).tolist()
        if private_prompts:  # one segment per prompt, its id the request's position: nothing shared
            self._offsets: list[int] = list(range(n + 1))
            self._ids: list[int] = list(range(n))
            self._lens: list[int] = list(self.p)
        else:
            self._offsets = trace.seg_offsets.tolist()
            self._ids = trace.seg_ids.tolist()
            self._lens = trace.seg_lens.tolist()
        self.gen = [0] * n
        self.seq = [0] * n
        self.est_end = [0] * n
        self.est_final = [0] * n
        self.finished_len = [-1] * n
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self.p)

    def segments(self, pos: int) -> tuple[list[int], list[int]]:
        """Segment ids and lengths of ``pos``'s prompt, root first."""
        off = self._offsets
        a, b = off[pos], off[pos + 1]
        return self._ids[a:b], self._lens[a:b]

    def segment_ids(self, pos: int) -> list[int]:
        off = self._offsets
        return self._ids[off[pos] : off[pos + 1]]

    def admitted(self, pos: int) -> bool:
        """Record an admission of ``pos``; returns whether it is its first."""
        first = self.seq[pos] == 0
        self._next_seq += 1
        self.seq[pos] = self._next_seq
        return first

    def finish(self, pos: int) -> None:
        self.finished_len[pos] = self.gen[pos]
