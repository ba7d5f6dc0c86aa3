"""DualScanner: the two runtime cursors of blend's admission over a two-sided Plan.

The left cursor walks the plan's request sequence forward from the compute-heavy end, the right one
backward from the memory-heavy end; ``pop_left()`` / ``pop_right()`` return the next request
position and None once every request has been popped. ``left`` / ``right`` describe the unit under
each cursor (planning-time density, mean prompt, mean estimated output). ``met`` is true once both
cursors are inside the same unit (or nothing is left): from then on :meth:`DualScanner.budgets`
gives all memory to the left stream, which drains the rest (:mod:`blendsim.sim.planning.scanner`).

Invariant: popping never skips or repeats a request; ``remaining`` is the number not yet popped.
The cursors are read every engine step, so their state is plain Python lists and ints, and each
unit's view is built once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.scanner import ScanBudget, dual_scan


@dataclass(frozen=True)
class UnitView:
    unit: int  # index into the plan's units
    density: float
    mean_p: float
    mean_d: float  # estimated


class DualScanner:
    """Two cursors over a Plan's request sequence (module docstring)."""

    def __init__(self, plan: Plan, *, refresh_target: bool = False) -> None:
        self.plan = plan
        self.refresh_target = refresh_target
        sizes = np.diff(plan.unit_bounds)
        self._order: list[int] = plan.order.tolist()
        self._unit_of: list[int] = np.repeat(np.arange(plan.num_units), sizes).tolist()
        self._density: list[float] = plan.unit_density.tolist()
        self._mean_p: list[float] = plan.unit_prompt.tolist()
        self._mean_d: list[float] = plan.unit_output.tolist()
        self._views: dict[int, UnitView] = {}
        self._target = float(plan.target_density)
        per_req_comp, per_req_mem = plan.request_costs()
        self._comp_cs = np.concatenate(([0.0], np.cumsum(per_req_comp)))
        self._mem_cs = np.concatenate(([0.0], np.cumsum(per_req_mem)))
        self._l = 0
        self._r = len(self._order) - 1

    # -------------------------------------------------------------- state
    @property
    def remaining(self) -> int:
        return max(self._r - self._l + 1, 0)

    @property
    def exhausted(self) -> bool:
        return self._r < self._l

    @property
    def met(self) -> bool:
        return self._r < self._l or self._unit_of[self._l] == self._unit_of[self._r]

    @property
    def units(self) -> tuple[int, int] | None:
        """The units under the left and right cursors; None once everything was popped."""
        if self._r < self._l:
            return None
        return self._unit_of[self._l], self._unit_of[self._r]

    @property
    def target(self) -> float:
        """ρ(rt): fixed (the plan's), or the density of what is left if ``refresh_target``."""
        if not self.refresh_target or self._r < self._l:
            return self._target
        comp, mem = self.unpopped_work()
        return comp / mem if mem > 0 else self._target

    def unpopped_work(self) -> tuple[float, float]:
        """Planned compute and memory work (seconds at the datasheet peaks, each request's share of
        its unit's: :meth:`Plan.request_costs`) of the requests not popped yet."""
        if self._r < self._l:
            return 0.0, 0.0
        lo, hi = self._l, self._r + 1
        return float(self._comp_cs[hi] - self._comp_cs[lo]), float(self._mem_cs[hi] - self._mem_cs[lo])

    def right_is_memory_heavy(self) -> bool:
        """The right cursor is in a unit below the target density, apart from the left cursor."""
        if self._r < self._l:
            return False
        unit = self._unit_of[self._r]
        return unit != self._unit_of[self._l] and self._density[unit] < self.target

    def _view(self, pos: int) -> UnitView | None:
        if self._r < self._l:
            return None
        u = self._unit_of[pos]
        view = self._views.get(u)
        if view is None:
            view = self._views[u] = UnitView(u, self._density[u], self._mean_p[u], self._mean_d[u])
        return view

    @property
    def left(self) -> UnitView | None:
        return self._view(self._l)

    @property
    def right(self) -> UnitView | None:
        return self._view(self._r)

    # -------------------------------------------------------------- cursors
    def peek_left(self) -> int | None:
        return None if self._r < self._l else self._order[self._l]

    def peek_right(self) -> int | None:
        return None if self._r < self._l else self._order[self._r]

    def pop_left(self) -> int | None:
        pos = self.peek_left()
        if pos is not None:
            self._l += 1
        return pos

    def pop_right(self) -> int | None:
        pos = self.peek_right()
        if pos is not None:
            self._r -= 1
        return pos

    def budgets(self, memory: float, kv_bytes_per_token: float) -> ScanBudget | None:
        """``dual_scan`` for the units under the cursors; None once everything was popped."""
        left, right = self.left, self.right
        if left is None or right is None:
            return None
        return dual_scan(
            self.target,
            left.density,
            right.density,
            memory,
            left.mean_p,
            left.mean_d,
            right.mean_p,
            right.mean_d,
            kv_bytes_per_token,
            met=self.met,
        )
