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

from blendsim.sim.planning.estimate import LengthEstimate


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
    prompt_len: np.ndarray | None = None  # int64[n] by request position (None: the unit means stand in)
    estimate: LengthEstimate | None = None  # how est_output_len was made (None: taken as known)
    # one-sided plans: prefill tokens per step their admission allows (None: the step's budget)
    prefill_cap: int | None = None
    # one-sided plans: how the engine admits from ``order``: "fcfs" (in order, head-of-line) or
    # "lpm" (SGLang's longest-prefix-match over the waiting queue, :mod:`...simulation.lpm_admission`)
    admission: str = "fcfs"
    # one-sided plans: the first ``lead`` requests of ``order`` go before the rest on every replica
    # (dfs-tuned's long outputs); under data parallelism they are dealt across replicas, not cut
    lead: int = 0

    @property
    def num_units(self) -> int:
        return int(self.unit_bounds.shape[0] - 1)

    @property
    def unit_density(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.unit_mem > 0, self.unit_comp / np.maximum(self.unit_mem, 1e-300), np.inf)

    def request_costs(self) -> tuple[np.ndarray, np.ndarray]:
        """Each request's share of its unit's planned compute and memory work, in ``order``.

        A unit's totals are split in proportion to the request's own estimates, not evenly: compute
        by ``p + d_hat`` (GEMM tokens), memory by ``d_hat (p + d_hat / 2)`` (the KV its decodes
        read), with ``p`` its prompt (the unit's mean prompt when the plan has no ``prompt_len``).
        A 56K-token video thus carries ~500x the memory work of a 2K-token one of the same unit, as
        it does when run. The shares of a unit add up to its totals."""
        sizes = np.diff(self.unit_bounds)
        unit_of = np.repeat(np.arange(self.num_units), sizes)
        if self.prompt_len is None:
            p = self.unit_prompt[unit_of]
        else:
            p = self.prompt_len[self.order].astype(np.float64)
        d = np.maximum(self.est_output_len[self.order], 1).astype(np.float64)
        per = []
        for weight, total in ((p + d, self.unit_comp), (d * (p + d / 2), self.unit_mem)):
            unit_sum = np.bincount(unit_of, weights=weight, minlength=self.num_units)
            per.append(total[unit_of] * weight / np.where(unit_sum > 0, unit_sum, 1.0)[unit_of])
        return per[0], per[1]

    @property
    def known_len(self) -> np.ndarray:
        """bool[n] by position: the estimate is the request's true length (sampled, of an exact
        kind, or the oracle's); every length counts as known without an ``estimate``."""
        if self.estimate is None:
            return np.ones(self.est_output_len.shape[0], dtype=bool)
        return self.estimate.known

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
