"""The dual scan (paper Algorithm 3, E7, E8): memory split and prefill budgets of two streams.

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
* **target**: fixed at ``ρ(rt)`` of the plan, like the paper; the runtime cursors
  (:class:`blendsim.sim.simulation.cursors.DualScanner`) can refresh it to the density of the
  requests not yet popped (``refresh_target=True``).

Densities must be finite and non-negative (a Plan's are: every estimated output is ≥ 1 token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
