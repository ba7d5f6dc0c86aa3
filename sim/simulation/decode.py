"""DecodeSet: the requests decoding one token per step, kept so that a step costs O(events).

A request enters at the step ``t0`` its prefill ends (or re-ends, after a preemption), holding
``kv0 = p + so0`` KV tokens (``so0``: the output tokens whose KV it already holds); at the end of
step ``t`` it holds ``kv0 + (t - t0)``, and the step after reads them all. What a step needs is
kept incrementally, never by a walk over the set:

* ``kv_read``: the KV tokens the next step's decode attention reads, a running sum that grows by
  ``n`` (one token each) per step and drops by a request's KV when it leaves;
* completions sit in a heap by the step they end at, known when the decode starts;
* private KV grows by one block for the decodes that write a token at a block boundary (position
  ``p + g``); requests are bucketed by the step residue at which that happens (``grow_class``), so
  a step's growth is one bucket count;
* the newest decoding request (the one a preemption takes) is the last one inserted into an
  insertion-ordered dict: decodes start in admission order (prefills run first in, first out, and a
  re-admitted request gets a new, larger admission number), so the newest by admission is the
  newest by start. Completion-heap entries carry a version; leaving bumps it, so stale entries are
  skipped.

Invariants: ``n`` is the number of members; ``kv_read`` is the sum of their KV at the step about to
run; ``sum(grow_class) == n``.
"""

from __future__ import annotations

import heapq


class DecodeSet:
    """Decoding requests of one replica (module docstring); per-request state by position."""

    def __init__(self, n_requests: int, block_size: int) -> None:
        self.bs = block_size
        self.n = 0
        self.kv_read = 0
        self.grow_class = [0] * block_size
        self.version = [0] * n_requests  # bumps whenever a request leaves (lazy heap deletion)
        self.t0 = [0] * n_requests  # step that ended its prefill
        self.kv0 = [0] * n_requests  # KV tokens it held then
        self.so0 = [0] * n_requests  # output tokens whose KV it held then
        self._finish: list[tuple[int, int, int]] = []  # (step it ends, pos, version)
        self._members: dict[int, None] = {}  # in decode-start order, which is admission order

    def generated_by(self, t: int) -> list[tuple[int, int]]:
        """``(pos, output tokens sampled by the end of step t)`` of every member, in decode-start
        order: its KV's output tokens plus the one the next step writes."""
        so0, t0 = self.so0, self.t0
        return [(pos, so0[pos] + (t - t0[pos]) + 1) for pos in self._members]

    def growth(self, t: int) -> int:
        """Private blocks step ``t``'s decodes add."""
        return self.grow_class[t % self.bs]

    def start(self, pos: int, t: int, prompt: int, so: int, finish_step: int) -> int:
        """``pos`` decodes from after step ``t`` until ``finish_step``; returns the KV the next
        step reads of it."""
        self.t0[pos], self.so0[pos] = t, so
        self.kv0[pos] = prompt + so
        self.n += 1
        kv = prompt + so + 1
        self.kv_read += kv
        self.grow_class[(t + 1 - so - prompt) % self.bs] += 1  # steps writing KV at a block start
        heapq.heappush(self._finish, (finish_step, pos, self.version[pos]))
        self._members[pos] = None
        return kv

    def kv_at(self, pos: int, t: int) -> int:
        """KV tokens ``pos`` holds at the end of step ``t``."""
        return self.kv0[pos] + (t - self.t0[pos])

    def finish_due(self, t: int, prompts: list[int]) -> list[tuple[int, int, int]]:
        """Remove the requests whose last token step ``t`` produced: ``(pos, kv, output tokens
        whose KV it holds)`` each, in completion-heap order."""
        heap = self._finish
        out = []
        while heap and heap[0][0] <= t:
            _, pos, ver = heapq.heappop(heap)
            if ver != self.version[pos]:
                continue
            steps = t - self.t0[pos]
            out.append((pos, self._leave(pos, prompts[pos], steps), self.so0[pos] + steps))
        return out

    def advance(self) -> None:
        """Every member wrote one more token: the next step reads one more of each."""
        self.kv_read += self.n

    def pop_newest(self, t: int, prompts: list[int]) -> tuple[int, int, int]:
        """Remove the newest member while step ``t`` is being made room for (its KV of step
        ``t - 1`` is what it holds): ``(pos, decode steps it ran, its KV)``."""
        pos = self._members.popitem()[0]
        steps = t - 1 - self.t0[pos]
        return pos, steps, self._leave(pos, prompts[pos], steps + 1)

    def _leave(self, pos: int, prompt: int, steps: int) -> int:
        """``pos`` leaves after ``steps`` steps past ``t0``; returns the KV it read last."""
        self.version[pos] += 1
        self._members.pop(pos, None)
        self.n -= 1
        kv = self.kv0[pos] + steps
        self.kv_read -= kv
        self.grow_class[(self.t0[pos] + 1 - self.so0[pos] - prompt) % self.bs] -= 1
        return kv
