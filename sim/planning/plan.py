"""A Plan: what a policy hands to the simulator and the executor.

A plan is a left-to-right sequence of *units* over the trace's request positions. A unit is a run of
requests that are admitted together in DFS order (one leaf, or a merged subtree), with its
planning-time (estimated) cost. Baselines read the sequence from the left only. ``blend`` is
two-sided: a left scanner consumes units from the front (compute-heavy end) and a right scanner from
the back (memory-heavy end) until the cursors meet; the runtime budgets come from
:mod:`blendsim.sim.planning.scanner`.

Invariant: ``order`` is a permutation of ``range(n_requests)``; ``unit_bounds`` is non-decreasing,
starts at 0 and ends at ``n_requests``; unit ``k`` is ``order[unit_bounds[k]:unit_bounds[k+1]]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Plan:
    policy: str
    order: np.ndarray  # int64[n]: request positions, left to right
    unit_bounds: np.ndarray  # int64[units + 1]
    unit_comp: np.ndarray  # float64[units]: sum Comp after sharing (s), estimated lengths
    unit_mem: np.ndarray  # float64[units]: sum Mem (s), estimated lengths
    unit_prompt: np.ndarray  # float64[units]: mean prompt length
    unit_output: np.ndarray  # float64[units]: mean estimated output length
    est_output_len: np.ndarray  # int64[n] by request position: the estimate planning used
    two_sided: bool = False
    target_density: float = float("nan")  # rho(rt) for blend
    stats: dict[str, Any] = field(default_factory=dict)  # leaves_split, sharing_kept, plan_s, ...

    @property
    def num_units(self) -> int:
        return int(self.unit_bounds.shape[0] - 1)

    @property
    def unit_density(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.unit_mem > 0, self.unit_comp / np.maximum(self.unit_mem, 1e-300), np.inf)

    def unit(self, k: int) -> np.ndarray:
        return self.order[self.unit_bounds[k] : self.unit_bounds[k + 1]]

    def validate(self, n_requests: int) -> None:
        """Check the invariant in the module docstring (used by tests and at simulation start)."""
        assert self.order.shape == (n_requests,)
        assert np.array_equal(np.sort(self.order), np.arange(n_requests)), "order is not a permutation"
        b = self.unit_bounds
        assert b[0] == 0 and b[-1] == n_requests and np.all(np.diff(b) >= 0)
        for arr in (self.unit_comp, self.unit_mem, self.unit_prompt, self.unit_output):
            assert arr.shape == (self.num_units,)
