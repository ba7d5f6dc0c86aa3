"""The simulated plan's timing, for a real engine to follow: when each request is handed over and how
many prefill tokens each step may run.

A policy is more than an order. The simulator's ``blend`` also *paces* its plan (design.md "The
critical path"): it admits a request only at a given step, and with chunk pacing caps each step's
prefill tokens so prompts are chunked over the following steps. A replay that follows the order
alone lets vLLM prefill everything at once and measures another schedule than the one simulated.
:class:`Pacing` carries both parts of the timing for a one-replica replay:

* ``release_steps``: the k-th request of the order is handed to the engine only once that many steps
  have run (the step at which the simulator admitted it, ``SimResult.release_steps``);
* ``prefill_caps``: step ``k`` (0-based) may run at most ``prefill_caps[k]`` prefill tokens
  (``SimResult.prefill_caps``; -1: no cap). A replay sets the engine's token budget of that step to its
  decoding requests plus the cap, which is how the simulator composes a capped step (decodes first,
  then prefill up to the cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blendsim.errors import UserError

if TYPE_CHECKING:
    from blendsim.sim.simulation.result import SimResult


@dataclass(frozen=True)
class Pacing:
    """Release steps (one per request of the order, non-decreasing) and per-step prefill caps."""

    release_steps: np.ndarray | None = None
    prefill_caps: np.ndarray | None = None

    @classmethod
    def from_sim(cls, sim: SimResult, replica: int | None = None) -> Pacing:
        """The timing of ``replica`` of a ``SimResult`` (None: its only replica; nothing if it has
        several)."""
        return cls(sim.release_steps(replica), sim.prefill_caps(replica))

    def checked(self, n: int) -> Pacing:
        """Validated against an order of ``n`` requests; UserError otherwise."""
        rel = self.release_steps
        if rel is not None:
            rel = np.asarray(rel, dtype=np.int64)
            if rel.shape != (n,) or (n and (rel[0] < 0 or np.any(np.diff(rel) < 0))):
                raise UserError(f"release steps must be {n} non-negative, non-decreasing step numbers")
        caps = self.prefill_caps
        if caps is not None:
            caps = np.asarray(caps, dtype=np.int64)
            if caps.ndim != 1 or np.any(caps < -1):
                raise UserError("prefill caps must be one number per step, each >= 0 or -1 (no cap)")
        return Pacing(rel, caps)

    def cap(self, step: int) -> int:
        """The prefill cap of 0-based ``step`` (-1: none; steps past the plan's end are not capped)."""
        caps = self.prefill_caps
        return int(caps[step]) if caps is not None and step < len(caps) else -1

    def token_budget(self, step: int, decoding: int, full: int) -> int:
        """The engine's token budget for ``step`` with ``decoding`` running decodes: ``decoding + cap``
        within ``full``; the full budget when uncapped, or when that would schedule nothing."""
        cap = self.cap(step)
        if cap < 0 or decoding + cap <= 0:
            return full
        return min(decoding + cap, full)

    # ---- files (the isolated child process reads them) ----

    def save(self, out: Path, policy: str) -> dict[str, str | None]:
        paths: dict[str, str | None] = {"release": None, "prefill_caps": None}
        for key, arr in (("release", self.release_steps), ("prefill_caps", self.prefill_caps)):
            if arr is not None:
                path = out / f"{policy}_{key}.npy"
                np.save(path, np.asarray(arr, dtype=np.int64))
                paths[key] = str(path)
        return paths

    @classmethod
    def load(cls, spec: dict[str, Any]) -> Pacing:
        def read(key: str) -> np.ndarray | None:
            return np.load(spec[key]) if spec.get(key) else None

        return cls(read("release"), read("prefill_caps"))
