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


class Stream:
    """Request positions in admission order and how many of them were admitted (``next``): one
    replica's own, or one that several replicas admit from (a disaggregated layout's prefill side)."""

    __slots__ = ("order", "next")

    def __init__(self, order: np.ndarray) -> None:
        self.order = [int(x) for x in order]
        self.next = 0


class FcfsAdmission:
    """First come first served over ``order`` (request positions), or over a shared :class:`Stream`;
    with ``prefill_cap`` every step runs at most that many prefill tokens (the plan's, e.g.
    ``dfs-tuned``'s: small chunks beside the decodes)."""

    def __init__(self, order: np.ndarray | Stream, prefill_cap: int | None = None) -> None:
        self.stream = order if isinstance(order, Stream) else Stream(order)
        self.prefill_cap = prefill_cap

    @property
    def exhausted(self) -> bool:
        return self.stream.next >= len(self.stream.order)

    def admit(self, engine: Engine) -> None:
        if self.prefill_cap is not None:
            engine.cap_prefill(self.prefill_cap)
        if not engine.readmit_preempted():
            return
        self.admit_in_order(engine)

    def admit_in_order(self, engine: Engine) -> None:
        """Admit from the stream's head while the engine takes the next request (a subclass may
        reorder the waiting part of the stream first)."""
        stream = self.stream
        order, i, n = stream.order, stream.next, len(stream.order)
        while i < n and engine.try_admit(order[i], 0) is not None:
            i += 1
        stream.next = i


class ReadmitOnly:
    """A decode replica's admission: requests arrive by transfer; it only re-admits its own
    preempted ones (which recompute their prompt and generated tokens there)."""

    exhausted = True

    def admit(self, engine: Engine) -> None:
        engine.readmit_preempted()
