"""PrefillQueue: prompts admitted and waiting to be computed, in admission order, run in chunks.

Each entry is ``[pos, remaining, context]``: the request, its prompt tokens still to compute (cache
misses, plus the output tokens a preempted request recomputes) and the tokens before its next chunk
(its cached prefix plus the chunks already run), which that chunk attends to. A step takes chunks
from the front within its prefill room: whole prompts while they fit, then part of the next one,
which stays at the front.

Invariants: ``pending`` is the sum of ``remaining`` over the queue; every entry has ``remaining >=
1`` (the last prompt token is never a cache hit); the tail is the newest admission.
"""

from __future__ import annotations

from collections import deque
from typing import Any

# What one step's prefill computed, ``(tokens, pairs, seqs, done)``: prompt tokens computed, causal
# query-key pairs (sum over chunks of q * context + q (q + 1) / 2), chunks run, and the requests whose
# prompt this step finished, in queue order. A plain tuple: one is made per step.
Chunks = tuple[int, float, int, list[int]]


class PrefillQueue:
    """Admitted prompts waiting for prefill (module docstring)."""

    def __init__(self) -> None:
        self._queue: deque[list[int]] = deque()
        self.pending = 0

    def __len__(self) -> int:
        return len(self._queue)

    def entries(self) -> list[tuple[int, int]]:
        """``(pos, remaining tokens)`` of every queued prompt, oldest first (a copy)."""
        return [(item[0], item[1]) for item in self._queue]

    def push(self, pos: int, tokens: int, context: int) -> None:
        self._queue.append([pos, tokens, context])
        self.pending += tokens

    def take(self, room: int, step: int, chunk_log: list[tuple[Any, ...]] | None) -> Chunks:
        """Run chunks from the front within ``room`` tokens; each chunk run appends ``(step, pos,
        tokens, context)`` to ``chunk_log`` (when given)."""
        queue = self._queue
        tokens = seqs = 0
        pairs = 0.0
        done: list[int] = []
        while queue and room > 0:
            item = queue[0]
            q = item[1] if item[1] < room else room
            context = item[2]
            pairs += q * context + q * (q + 1) / 2
            if chunk_log is not None:
                chunk_log.append((step, item[0], q, context))
            tokens += q
            seqs += 1
            room -= q
            item[1] -= q
            item[2] = context + q
            if item[1]:
                break
            queue.popleft()
            done.append(item[0])
        self.pending -= tokens
        return tokens, pairs, seqs, done

    def pop_newest(self) -> tuple[int, int]:
        """Remove the newest admission (a preemption); returns its position and remaining tokens."""
        pos, remaining, _context = self._queue.pop()
        self.pending -= remaining
        return pos, remaining
