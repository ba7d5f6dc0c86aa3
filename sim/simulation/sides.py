"""SideLedger: the KV of each admission side, what blend's logical partitions are checked against.

Every running request belongs to one side: 0 (``fcfs``, the baselines), 1 (blend's left,
compute-heavy stream) or 2 (its right, memory-heavy stream). Per side the ledger keeps

* ``load``: the blocks its requests were charged at admission (new prompt blocks + charge);
* ``decoding`` and ``kv``: its decoding requests and the KV tokens they read next step (the actual
  use, which outgrows the charges when lifetimes line up);
* ``members``: how many of its requests run, with ``changes`` bumped whenever the set or a
  member's estimate changes (an admission, a decode start, a departure, a re-accounting), so a
  consumer can cache what it derives from the set.

For the right side it also keeps its members' estimated ends and final KV, which blend's
projected-peak admission reads (:class:`~blendsim.sim.simulation.projected_peak.RightProjection`):
members whose estimated end was ahead when they entered sit in ``right_ends`` / ``right_finals``
(two lists in the same order, sorted by end; ``schedule_changes`` counts their changes); members
re-accounted from the left (below) have passed their estimated end for good, and a projection
counts such a member only at the current step, with ``final - end + now`` tokens, so they are kept
as two sums instead (``overdue_n``, ``overdue_excess``: their count and their ``final - end``),
which change without touching the lists.

A left request that outruns its estimated output is re-accounted to the right partition (paper
§5) at the step its token count passes the estimate: :meth:`watch_outrun` queues it,
:meth:`due_outruns` lists those due and :meth:`move` moves one.

Invariants: ``load[s]`` is the sum of ``side_charge`` over the running requests of side ``s``;
``decoding[s]`` and ``kv[s]`` are the count and KV of its members that decode; every right member
is either one entry of ``right_ends`` / ``right_finals`` or one of ``overdue_n``, with its latest
estimate; an overdue member's estimated end is before every step still to run.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right

SIDES = ("fcfs", "left", "right")  # side codes: 0 baseline, 1 blend left, 2 blend right
FCFS, LEFT, RIGHT = 0, 1, 2


class SideLedger:
    """Per-side KV accounting of one replica (module docstring)."""

    def __init__(self, n_requests: int) -> None:
        self.side = [0] * n_requests
        self.side_charge = [0] * n_requests  # blocks charged to its side
        self.load = [0, 0, 0]
        self.decoding = [0, 0, 0]
        self.kv = [0, 0, 0]
        self.members = [0, 0, 0]
        self.changes = [0, 0, 0]
        self.right_ends: list[int] = []
        self.right_finals: list[int] = []
        self.schedule_changes = 0
        self.overdue_n = 0
        self.overdue_excess = 0
        self._estimate = [(0, 0)] * n_requests  # (end, final) as entered on the right
        self._overdue = [False] * n_requests
        self._outrun: list[tuple[int, int, int]] = []  # (step, pos, decode version)

    def blocks(self, side: int, block_size: int) -> int:
        """KV blocks ``side`` holds or is charged for: the larger of its charges and its decodes' KV."""
        load, kv_blocks = self.load[side], self.kv[side] // block_size
        return load if load >= kv_blocks else kv_blocks

    def join(self, pos: int, side: int, charged_blocks: int, est_end: int, est_final: int) -> None:
        self.side[pos] = side
        self.side_charge[pos] = charged_blocks
        self.load[side] += charged_blocks
        self.members[side] += 1
        self.changes[side] += 1
        if side == RIGHT:
            self._enter(pos, est_end, est_final)

    def leave(self, pos: int) -> None:
        side = self.side[pos]
        self.members[side] -= 1
        self.changes[side] += 1
        self.load[side] -= self.side_charge[pos]
        self.side_charge[pos] = 0
        if side == RIGHT:
            self._exit(pos)

    def decode_started(self, pos: int, kv: int, est_end: int) -> None:
        """``pos`` decodes from now on, its estimated end now ``est_end`` (exact)."""
        side = self.side[pos]
        self.changes[side] += 1
        self.decoding[side] += 1
        self.kv[side] += kv
        if side == RIGHT:
            final = self._estimate[pos][1]
            self._exit(pos)
            self._enter(pos, est_end, final)

    def overdue_tokens(self, now: int) -> int:
        """KV tokens the projection gives the overdue right members at step ``now``."""
        return self.overdue_excess + self.overdue_n * now

    def _enter(self, pos: int, end: int, final: int) -> None:
        i = bisect_right(self.right_ends, end)
        self.right_ends.insert(i, end)
        self.right_finals.insert(i, final)
        self.schedule_changes += 1
        self._estimate[pos] = (end, final)

    def _enter_overdue(self, pos: int, end: int, final: int) -> None:
        self.overdue_n += 1
        self.overdue_excess += final - end
        self._overdue[pos] = True
        self._estimate[pos] = (end, final)

    def _exit(self, pos: int) -> None:
        end, final = self._estimate[pos]
        if self._overdue[pos]:
            self._overdue[pos] = False
            self.overdue_n -= 1
            self.overdue_excess -= final - end
            return
        self.schedule_changes += 1
        ends, finals = self.right_ends, self.right_finals
        i = bisect_left(ends, end)
        while finals[i] != final:  # equal ends: any entry with its final is the same entry
            i += 1
        del ends[i], finals[i]

    def decode_ended(self, pos: int, kv: int) -> None:
        side = self.side[pos]
        self.decoding[side] -= 1
        self.kv[side] -= kv

    def advance(self) -> None:
        """Every decoding request wrote one more token."""
        kv, decoding = self.kv, self.decoding
        for side in (0, 1, 2):
            kv[side] += decoding[side]

    def watch_outrun(self, step: int, pos: int, version: int) -> None:
        """``pos`` (decode ``version``) passes its estimate after step ``step``."""
        heapq.heappush(self._outrun, (step, pos, version))

    def due_outruns(self, t: int, versions: list[int]) -> list[int]:
        """Left requests whose token count passed their estimate by step ``t`` and still decode."""
        heap = self._outrun
        out = []
        while heap and heap[0][0] <= t:
            _, pos, ver = heapq.heappop(heap)
            if ver == versions[pos] and self.side[pos] == LEFT:
                out.append(pos)
        return out

    def move(self, pos: int, kv: int, est_end: int, est_final: int, step: int) -> None:
        """Re-account decoding left request ``pos`` (``kv`` tokens, its estimate ending at
        ``est_end`` with ``est_final`` tokens) to the right partition at step ``step``. Having
        outrun its estimate, it normally ends before the steps still to run (``est_end <= step``)
        and joins the overdue members; an estimate still ahead goes into the sorted lists."""
        charge = self.side_charge[pos]
        self.load[LEFT] -= charge
        self.load[RIGHT] += charge
        self.decoding[LEFT] -= 1
        self.kv[LEFT] -= kv
        self.decoding[RIGHT] += 1
        self.kv[RIGHT] += kv
        self.side[pos] = RIGHT
        self.members[LEFT] -= 1
        self.members[RIGHT] += 1
        self.changes[LEFT] += 1
        self.changes[RIGHT] += 1
        if est_end <= step:
            self._enter_overdue(pos, est_end, est_final)
        else:
            self._enter(pos, est_end, est_final)

    @property
    def has_outruns(self) -> bool:
        return bool(self._outrun)
