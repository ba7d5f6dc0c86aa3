"""Admission policies: which request a replica admits next.

An admission policy is called before every engine step. Preempted requests are re-admitted first
(vLLM puts them at the front of its waiting queue). The baselines (``fifo``, ``dfs``, ``balance``)
differ only in their plan's order: they admit first-come-first-served over that order while KV,
the running cap and the step's prefill room allow, stopping at the first request that does not fit
(head-of-line, like vLLM's FCFS scheduler). ``blend`` lives in :mod:`blendsim.sim.simulation.blend_admission`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from blendsim.sim.simulation.engine import Engine


class Admission(Protocol):
    """Invariant: ``exhausted`` becomes true once every request of the replica's share was admitted
    at least once; the engine finishes when it is exhausted and idle."""

    @property
    def exhausted(self) -> bool: ...

    def admit(self, engine: Engine) -> None: ...


class FcfsAdmission:
    """First come first served over ``order`` (request positions)."""

    def __init__(self, order: np.ndarray) -> None:
        self.order = [int(x) for x in order]
        self.next = 0

    @property
    def exhausted(self) -> bool:
        return self.next >= len(self.order)

    def admit(self, engine: Engine) -> None:
        if not engine.readmit_preempted():
            return
        order, i, n = self.order, self.next, len(self.order)
        while i < n and engine.try_admit(order[i], 0) is not None:
            i += 1
        self.next = i
