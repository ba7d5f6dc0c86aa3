"""Projected peak KV of a set of decoding requests: the ``projected_peak`` right-side admission.

A running request ``i`` is expected to end at step ``e_i`` holding ``F_i`` KV tokens (its prompt plus
its estimated output); until then it grows by one token per step, so at step ``t < e_i`` it holds
``F_i - (e_i - t)`` tokens and at ``t >= e_i`` nothing. The sum over a set is piecewise linear and
increasing between ends, so its maximum over future steps is reached just before one of the ends:

    S_j = sum over i with e_i >= e_j of (F_i - e_i)  +  (count of those) * e_j     (ends sorted).

``RightProjection`` keeps these sums for one side's residents (rebuilt only when the set changes:
an admission, completion, preemption or re-accounting; between changes every request moves along
its own line, so the ``S_j`` are absolute and stay valid) and answers in O(log m) + one vectorised
max over the residents whether a candidate ``(p, d_hat)`` admitted now keeps the projected peak of
the set plus the candidate within a limit.

Residents past their estimated end (they outran the estimate) are assumed to end at the next step:
they count at the current step, with the KV their linear growth gives them now, and not later. So
residents known to be past their end for good need no place in the sorted lists: the caller passes
their KV at ``now`` as one sum (``overdue``), and their comings and goings need no rebuild.
With exact estimates nobody outruns, and the side's KV never exceeds the limit by construction
(up to the prefill delay between admission and first decode, and block rounding).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import add, mul, sub

import numpy as np


def projected_peak(ends: np.ndarray, finals: np.ndarray, now: int) -> float:
    """Brute force reference: the peak over steps ``t >= now`` of sum_i [t < e_i] (F_i - e_i + t).

    Residents with ``e_i <= now`` are overdue and counted at ``now`` only (module docstring)."""
    if len(ends) == 0:
        return 0.0
    base = float(np.sum(finals - ends) + len(ends) * now)  # everyone, extrapolated to now
    peak = base
    for t in np.unique(ends[ends > now]):
        alive = ends >= t
        peak = max(peak, float(np.sum(finals[alive] - ends[alive]) + alive.sum() * t))
    return peak


class RightProjection:
    """Sorted ends and suffix sums of one side's residents (module docstring).

    Ends and finals are integers (steps and tokens), so every sum here is an exact integer; the
    order among residents with equal ends does not matter, because every range queried is a union
    of whole groups of equal ends. Plain Python lists: a side holds tens of residents, and the
    projection is rebuilt at every change of the set."""

    def __init__(self, ends: list[int], finals: list[int], presorted: bool = False) -> None:
        """``presorted``: the ends are sorted increasingly and the finals in the same order already;
        then the lists are read, not copied, so the caller must not change them while it uses the
        projection."""
        if not presorted:
            pairs = sorted(zip(ends, finals, strict=True))
            ends, finals = [e for e, _ in pairs], [f for _, f in pairs]
        m = len(ends)
        self.m = m
        self.ends = ends
        # suffix[j]: sum over i >= j of (F_i - e_i), suffix[m] = 0; S_j: the total just before end j
        suffix = list(accumulate(map(sub, reversed(finals), reversed(ends)), initial=0))
        suffix.reverse()
        self.suffix = suffix
        self.s = list(map(add, suffix, map(mul, range(m, 0, -1), ends)))
        self._s_plus_e: list[int] | None = None

    def peak(self, now: int, overdue: int = 0) -> float:
        """Projected peak KV tokens of the residents alone over steps from ``now`` on, plus
        ``overdue`` tokens held at ``now`` only (residents kept outside the lists that are past
        their end: the ledger's overdue members)."""
        peak = self.suffix[0] + self.m * now + overdue
        j0 = bisect_right(self.ends, now)
        if j0 < self.m:
            later = max(self.s[j0:])
            if later > peak:
                peak = later
        return float(peak)

    def peak_with(self, now: int, prompt: int, est_output: int, overdue: int = 0) -> float:
        """Projected peak KV tokens of the residents (and ``overdue``, as in :meth:`peak`) plus a
        request admitted at ``now`` with ``prompt`` tokens that decodes ``est_output`` tokens
        (ending at ``now + est_output``)."""
        end_new = now + max(est_output, 1)
        final_new = prompt + est_output
        # now: every resident at its extrapolated KV, plus the candidate's prompt
        peak = self.suffix[0] + self.m * now + prompt + overdue
        j0 = bisect_right(self.ends, now)  # first resident not overdue
        js = bisect_left(self.ends, end_new)  # first resident still running when the candidate ends
        if js > j0:  # just before each resident end while the candidate runs
            if self._s_plus_e is None:
                self._s_plus_e = list(map(add, self.s, self.ends))
            peak = max(peak, max(self._s_plus_e[j0:js]) + final_new - end_new)
        # just before the candidate ends: it holds final_new, residents ending later hold theirs
        return float(max(peak, self.suffix[js] + (self.m - js) * end_new + final_new))
