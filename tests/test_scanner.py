"""Dual scan (Algorithm 3, E7, E8) with its edge cases, and the runtime DualScanner (sim/scanner.py)."""

from __future__ import annotations

import numpy as np
import pytest

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.scanner import dual_scan, memory_split, prefill_budget
from blendsim.sim.simulation.cursors import DualScanner

GB = 1e9
KV = 131072  # Llama-3-8B bytes per KV token


def test_figure_6_memory_split() -> None:
    # paper Fig. 6: M = 60 GB, rho(rt) = 1.27, rho(L) = 3.73, rho(R) = 0.096 -> 19.38 / 40.62 GB
    m_l, m_r, case = memory_split(1.27, 3.73, 0.096, 60 * GB)
    assert case == "normal"
    assert m_l / GB == pytest.approx(19.38, abs=0.005) and m_r / GB == pytest.approx(40.62, abs=0.005)
    assert 3.73 * m_l + 0.096 * m_r == pytest.approx(1.27 * 60 * GB)  # the compute equation of E7


def test_e8_budgets() -> None:
    n, c = prefill_budget(19.38 * GB, 244, 27, KV)
    assert n == pytest.approx(19.38 * GB / ((244 + 13.5) * KV)) and c == pytest.approx(n * 244 / 27)
    b = dual_scan(1.27, 3.73, 0.096, 60 * GB, 244, 27, 121, 16384, KV)
    assert b.c_left == pytest.approx(prefill_budget(b.m_left, 244, 27, KV)[1])
    assert b.c_right == pytest.approx(prefill_budget(b.m_right, 121, 16384, KV)[1])
    assert prefill_budget(0.0, 10, 10, KV) == (0.0, 0.0)


def test_target_on_a_boundary_gives_all_to_that_side() -> None:
    assert memory_split(2.0, 2.0, 0.5, 10.0)[:2] == (10.0, 0.0)
    assert memory_split(0.5, 2.0, 0.5, 10.0)[:2] == (0.0, 10.0)


def test_inverted_densities_still_blend() -> None:  # an unsorted pair around the target
    m_l, m_r, case = memory_split(1.0, 0.5, 2.0, 9.0)
    assert case == "normal" and 0.5 * m_l + 2.0 * m_r == pytest.approx(9.0)


def test_both_compute_heavy_goes_to_the_lower_density_side() -> None:
    assert memory_split(1.0, 5.0, 2.0, 10.0) == (0.0, 10.0, "both_compute")
    assert memory_split(1.0, 2.0, 5.0, 10.0) == (10.0, 0.0, "both_compute")


def test_both_memory_heavy_goes_to_the_higher_density_side() -> None:
    assert memory_split(1.0, 0.5, 0.1, 10.0) == (10.0, 0.0, "both_memory")
    assert memory_split(1.0, 0.1, 0.5, 10.0) == (0.0, 10.0, "both_memory")


def test_equal_densities_split_in_half() -> None:
    assert memory_split(1.0, 0.7, 0.7, 10.0) == (5.0, 5.0, "equal")
    assert memory_split(0.7, 0.7, 0.7, 10.0) == (5.0, 5.0, "equal")


def test_cursors_met_gives_everything_to_the_left() -> None:
    b = dual_scan(1.0, 3.0, 0.1, 10 * GB, 100, 10, 100, 1000, KV, met=True)
    assert (b.m_left, b.m_right, b.c_right, b.case) == (10 * GB, 0.0, 0.0, "met")


def test_bad_densities_are_rejected() -> None:
    with pytest.raises(ValueError):
        memory_split(1.0, float("nan"), 0.1, 1.0)
    with pytest.raises(ValueError):
        memory_split(1.0, float("inf"), 0.1, 1.0)


def three_unit_plan() -> Plan:
    # units: [0, 1] compute-heavy, [2] middle, [3, 4, 5] memory-heavy
    return Plan(
        "blend",
        np.array([4, 0, 5, 1, 3, 2]),
        np.array([0, 2, 3, 6]),
        unit_comp=np.array([8.0, 1.0, 0.3]),
        unit_mem=np.array([2.0, 1.0, 3.0]),
        unit_prompt=np.array([100.0, 50.0, 20.0]),
        unit_output=np.array([5.0, 50.0, 500.0]),
        est_output_len=np.ones(6, dtype=np.int64),
        two_sided=True,
        target_density=9.3 / 6.0,
    )


def test_scanner_walks_both_ends_without_repeats() -> None:
    s = DualScanner(three_unit_plan())
    assert s.left.unit == 0 and s.right.unit == 2 and not s.met
    assert s.left.density == pytest.approx(4.0) and s.right.density == pytest.approx(0.1)
    assert s.right.mean_d == 500.0
    b = s.budgets(10 * GB, KV)
    assert b is not None and b.case == "normal"
    assert s.peek_left() == 4 and s.pop_left() == 4 and s.pop_right() == 2
    assert s.pop_left() == 0 and s.left.unit == 1 and not s.met
    assert s.pop_right() == 3 and s.pop_right() == 1 and s.right.unit == 1 and s.met  # both on unit 1
    assert s.budgets(10 * GB, KV).case == "met"
    assert s.remaining == 1 and s.pop_right() == 5
    assert s.exhausted and s.met and s.pop_left() is None and s.pop_right() is None
    assert s.left is None and s.budgets(10 * GB, KV) is None


def test_target_fixed_or_refreshed() -> None:
    plan = three_unit_plan()
    fixed, fresh = DualScanner(plan), DualScanner(plan, refresh_target=True)
    assert fixed.target == pytest.approx(plan.target_density)
    assert fresh.target == pytest.approx(plan.target_density)
    for s in (fixed, fresh):
        s.pop_left()
        s.pop_left()
    assert fixed.target == pytest.approx(plan.target_density)
    assert fresh.target == pytest.approx((1.0 + 0.3) / (1.0 + 3.0))  # what is left: units 1 and 2
