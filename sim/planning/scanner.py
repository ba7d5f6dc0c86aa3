"""The dual scanner (paper Algorithm 3, E7, E8) and its runtime cursors over a two-sided Plan.

``dual_scan`` splits the KV memory ``M`` between the left (compute-heavy) and right (memory-heavy)
streams so that the blend has the target density (E7), then turns each share into a prefill-token
budget per step (E8). Edge cases the paper leaves open, decided here:

* **normal** (``target`` between ``ρ_L`` and ``ρ_R``, either orientation): E7 exactly, clipped to
  ``[0, M]`` against rounding. ``ρ_L == target`` gives all memory to the left.
* **equal** (``|ρ_L − ρ_R| ≤ 1e-12·max``): E7 divides by zero; both streams are the same kind, so
  memory is split in half and both cursors keep moving.
* **both above the target** (only compute-heavy work under the cursors, e.g. the memory-heavy side
  has run out and the right cursor entered compute-heavy units): all memory to the *lower*-density
  side, the best blend available. **Both below**: all memory to the *higher*-density side. For a
  sorted plan (``ρ_L ≥ ρ_R``) this is E7 clamped to ``[0, M]``. This is also the tail rule: when
  one kind runs out, the side nearest the target takes everything.
* **cursors met** (both cursors in the same unit, ``met=True``): one pool is left; all memory goes
  to the left stream and the left cursor drains it (``C_R = 0``).
* **target**: fixed at ``ρ(rt)`` of the plan, like the paper; :class:`DualScanner` can refresh it
  to the density of the requests not yet popped (``refresh_target=True``).

Densities must be finite and non-negative (a Plan's are: every estimated output is ≥ 1 token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendsim.sim.planning.plan import Plan

EQUAL_RTOL = 1e-12


@dataclass(frozen=True)
class ScanBudget:
    m_left: float  # bytes of KV memory for the left (compute-heavy) stream
    m_right: float  # bytes for the right (memory-heavy) stream
    n_left: float  # decode requests of the left unit's shape that fit in m_left (E8)
    n_right: float
    c_left: float  # prefill tokens per step to admit from the left (E8)
    c_right: float
    case: str  # "normal", "equal", "both_compute", "both_memory", "met"


def memory_split(
    target: float, rho_left: float, rho_right: float, memory: float, met: bool = False
) -> tuple[float, float, str]:
    """E7 with the edge cases of the module docstring: ``(M_L, M_R, case)``."""
    for name, v in (("target", target), ("left density", rho_left), ("right density", rho_right)):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v}")
    if met:
        return memory, 0.0, "met"
    if abs(rho_left - rho_right) <= EQUAL_RTOL * max(rho_left, rho_right):
        return memory / 2, memory / 2, "equal"
    lo, hi = min(rho_left, rho_right), max(rho_left, rho_right)
    if lo <= target <= hi:
        m_left = memory * (target - rho_right) / (rho_left - rho_right)
        m_left = min(max(m_left, 0.0), memory)
        return m_left, memory - m_left, "normal"
    if lo > target:  # both compute-heavy: give everything to the lower-density side
        return (memory, 0.0, "both_compute") if rho_left < rho_right else (0.0, memory, "both_compute")
    # both memory-heavy: give everything to the higher-density side
    return (memory, 0.0, "both_memory") if rho_left > rho_right else (0.0, memory, "both_memory")


def prefill_budget(memory: float, p: float, d: float, kv_bytes_per_token: float) -> tuple[float, float]:
    """E8: decode requests of shape (p, d) that fit in ``memory``, and their prefill tokens per step."""
    if memory <= 0:
        return 0.0, 0.0
    if d <= 0 or p < 0:
        raise ValueError(f"unit shape must have p >= 0 and d > 0, got p={p}, d={d}")
    n = memory / ((p + d / 2) * kv_bytes_per_token)
    return n, n * p / d


def dual_scan(
    target: float,
    rho_left: float,
    rho_right: float,
    memory: float,
    p_left: float,
    d_left: float,
    p_right: float,
    d_right: float,
    kv_bytes_per_token: float,
    *,
    met: bool = False,
) -> ScanBudget:
    """Algorithm 3: memory split (E7) and prefill budgets (E8) for the units under the cursors."""
    m_l, m_r, case = memory_split(target, rho_left, rho_right, memory, met)
    n_l, c_l = prefill_budget(m_l, p_left, d_left, kv_bytes_per_token)
    n_r, c_r = prefill_budget(m_r, p_right, d_right, kv_bytes_per_token)
    return ScanBudget(m_l, m_r, n_l, n_r, c_l, c_r, case)


@dataclass(frozen=True)
class UnitView:
    unit: int  # index into the plan's units
    density: float
    mean_p: float
    mean_d: float  # estimated


class DualScanner:
    """Two cursors over a Plan's request sequence: the left one walks forward, the right one back.

    ``pop_left()`` returns the next request position from the front, ``pop_right()`` from the back;
    each returns None once every request has been popped. ``left``/``right`` describe the unit
    under each cursor (planning-time density, mean p, mean estimated d). ``met`` is true once both
    cursors are inside the same unit (or nothing is left): from then on ``budgets`` gives all memory
    to the left stream, which drains the rest. Popping never skips or repeats a request.
    """

    def __init__(self, plan: Plan, *, refresh_target: bool = False) -> None:
        self.plan = plan
        self.refresh_target = refresh_target
        sizes = np.diff(plan.unit_bounds)
        self._unit_of = np.repeat(np.arange(plan.num_units), sizes)
        self._density = plan.unit_density
        with np.errstate(divide="ignore", invalid="ignore"):
            per_req_comp = np.repeat(np.where(sizes > 0, plan.unit_comp / np.maximum(sizes, 1), 0), sizes)
            per_req_mem = np.repeat(np.where(sizes > 0, plan.unit_mem / np.maximum(sizes, 1), 0), sizes)
        self._comp_cs = np.concatenate(([0.0], np.cumsum(per_req_comp)))
        self._mem_cs = np.concatenate(([0.0], np.cumsum(per_req_mem)))
        self._l = 0
        self._r = len(plan.order) - 1

    # -------------------------------------------------------------- state
    @property
    def remaining(self) -> int:
        return max(self._r - self._l + 1, 0)

    @property
    def exhausted(self) -> bool:
        return self._r < self._l

    @property
    def met(self) -> bool:
        return self.exhausted or self._unit_of[self._l] == self._unit_of[self._r]

    @property
    def target(self) -> float:
        """ρ(rt): fixed (the plan's), or the density of what is left if ``refresh_target``."""
        if not self.refresh_target or self.exhausted:
            return float(self.plan.target_density)
        mem = self._mem_cs[self._r + 1] - self._mem_cs[self._l]
        comp = self._comp_cs[self._r + 1] - self._comp_cs[self._l]
        return float(comp / mem) if mem > 0 else float(self.plan.target_density)

    def _view(self, pos: int) -> UnitView | None:
        if self.exhausted:
            return None
        u = int(self._unit_of[pos])
        return UnitView(
            u, float(self._density[u]), float(self.plan.unit_prompt[u]), float(self.plan.unit_output[u])
        )

    @property
    def left(self) -> UnitView | None:
        return self._view(self._l)

    @property
    def right(self) -> UnitView | None:
        return self._view(self._r)

    # -------------------------------------------------------------- cursors
    def peek_left(self) -> int | None:
        return None if self.exhausted else int(self.plan.order[self._l])

    def peek_right(self) -> int | None:
        return None if self.exhausted else int(self.plan.order[self._r])

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
