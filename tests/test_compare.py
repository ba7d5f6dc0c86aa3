"""The comparison: MAPE, the error sign convention, speedups and the comparison.json schema."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from blendsim.errors import UserError
from blendsim.executor.auto_pick import auto_picks
from blendsim.executor.compare import (
    Comparison,
    ComparisonEntry,
    entry_from_results,
    signed_error,
    speedups,
)
from blendsim.executor.records import MeasuredRun
from blendsim.profiler.fit import mape
from blendsim.sim.simulation.result import SimResult

ENTRY_KEYS = {
    "policy",
    "backend",
    "measured_tok_s",
    "simulated_tok_s",
    "error",
    "measured_makespan_s",
    "simulated_makespan_s",
    "makespan_error",
    "complete",
}


def test_mape_on_a_constructed_example() -> None:
    # |1.1 - 1| / 1 = 0.1, |1.8 - 2| / 2 = 0.1, |4 - 4| / 4 = 0, |2 - 1| / 1 = 1 -> mean 0.3
    assert mape([1.0, 2.0, 4.0, 1.0], [1.1, 1.8, 4.0, 2.0]) == pytest.approx(0.3)
    assert mape([3.0], [3.0]) == 0.0


@pytest.mark.parametrize(("measured", "predicted"), [([], []), ([1.0, 2.0], [1.0]), ([0.0], [1.0])])
def test_mape_rejects_bad_series(measured: list[float], predicted: list[float]) -> None:
    with pytest.raises(ValueError):
        mape(measured, predicted)


def test_error_sign_convention() -> None:
    # the simulator predicts 110 tok/s where 100 were measured: optimistic, positive error
    assert signed_error(100.0, 110.0) == pytest.approx(0.10)
    assert signed_error(100.0, 90.0) == pytest.approx(-0.10)
    assert math.isnan(signed_error(0.0, 5.0))
    e = ComparisonEntry(
        "fifo",
        "torch",
        measured_tok_s=100.0,
        simulated_tok_s=125.0,
        measured_makespan_s=10.0,
        simulated_makespan_s=8.0,
    )
    assert e.error == pytest.approx(0.25)
    assert e.makespan_error == pytest.approx(-0.2)


def _entries() -> list[ComparisonEntry]:
    return [
        ComparisonEntry("fifo", "vllm", 100.0, 110.0, 20.0, 18.0),
        ComparisonEntry("dfs", "vllm", 120.0, 120.0, 16.0, 16.0),
        ComparisonEntry("blend", "vllm", 150.0, 132.0, 13.0, 15.0),
        ComparisonEntry("blend", "torch", 50.0, 55.0, 2.0, 1.8, extra={"step_mape": 0.04}),
    ]


def test_speedups_of_blend_measured_vs_simulated() -> None:
    rows = {(s["backend"], s["baseline"]): s for s in speedups(_entries())}
    assert set(rows) == {("vllm", "fifo"), ("vllm", "dfs")}  # torch has no baseline here
    fifo = rows[("vllm", "fifo")]
    assert fifo["measured"] == pytest.approx(1.5)
    assert fifo["simulated"] == pytest.approx(1.2)
    assert fifo["error"] == pytest.approx(1.2 / 1.5 - 1)


def test_comparison_files_have_the_schema(tmp_path: Path) -> None:
    entries = [*_entries(), ComparisonEntry("dfs", "torch", 0.0, 1.0, 0.0, 1.0, complete=False)]
    paths = Comparison(entries, {"device": "cpu"}).write(tmp_path)
    assert [p.name for p in paths] == ["comparison.json", "comparison.md"]
    data = json.loads((tmp_path / "comparison.json").read_text())  # strict JSON: NaN became null
    assert data["format"] == "blendsim-comparison/1"
    assert len(data["entries"]) == len(entries)
    for row in data["entries"]:
        assert set(row) >= ENTRY_KEYS
    assert {(r["policy"], r["backend"]) for r in data["entries"]} == {(e.policy, e.backend) for e in entries}
    assert data["entries"][0]["error"] == pytest.approx(0.1)
    assert data["entries"][-1]["error"] is None
    assert data["max_abs_error"] == pytest.approx(0.12)
    md = (tmp_path / "comparison.md").read_text()
    assert "| blend | torch |" in md and "4.0%" in md and "Speedup of blend" in md


def test_entry_from_results_checks_the_policy() -> None:
    sim = SimResult("fifo", "serial", 10, 1000, 5.0, 9, 0, 0.2, 0.2, 1.0, 0.0, 0.0)
    meas = MeasuredRun.from_dict(
        {"policy": "fifo", "total_tokens": 1000, "makespan_s": 4.0, "completed": True, "steps": 11}
    )
    e = entry_from_results(sim, meas)
    assert (e.error, e.complete, e.extra["simulated_steps"], e.backend) == (
        pytest.approx(-0.2),
        True,
        9,
        "vllm",
    )
    with pytest.raises(UserError, match="policy"):
        entry_from_results(dataclasses.replace(sim, policy="dfs"), meas)


def test_markdown_shows_the_kernel_profiles_prediction_of_vllm(tmp_path: Path) -> None:
    entry = ComparisonEntry(
        "fifo",
        "vllm",
        600.0,
        620.0,
        10.0,
        9.7,
        extra={"kernel_profile_tok_s": 480.0, "kernel_profile_error": 480.0 / 600.0 - 1},
    )
    Comparison([entry]).write(tmp_path)
    md = (tmp_path / "comparison.md").read_text()
    assert "kernel profile instead of the engine-calibrated one" in md
    assert "| fifo | 600.0 | 480.0 | -20.0% |" in md
    assert "kernel profile" not in Comparison(_entries()).to_markdown()  # only when it was computed


def test_auto_pick_is_compared_with_the_fastest_measured_order(tmp_path: Path) -> None:
    auto = ComparisonEntry("auto", "vllm", 140.0, 133.0, 14.0, 15.0, extra={"auto_chosen": "blend"})
    entries = [*_entries(), auto]
    (row,) = auto_picks(entries)  # torch has no auto entry: no row
    assert row["backend"] == "vllm" and row["chosen"] == "blend"
    assert row["fastest"] == "blend" and row["fastest_tok_s"] == 150.0  # not auto's own replay
    assert row["ratio"] == pytest.approx(140.0 / 150.0)
    Comparison(entries, {}).write(tmp_path)
    assert json.loads((tmp_path / "comparison.json").read_text())["auto_picks"] == [row]
    assert "| vllm | blend | 140.0 | blend | 150.0 | 0.933x |" in (tmp_path / "comparison.md").read_text()
    assert auto_picks(_entries()) == []
