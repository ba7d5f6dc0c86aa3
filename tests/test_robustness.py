"""The robustness study's settings, their run options, the per-row ratios and the --requests entry."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from blendsim.experiments.common import SCALES
from blendsim.experiments.robustness import (
    BASELINES,
    add_ratios,
    main,
    run_options,
    setting_label,
    settings,
    spread,
)
from blendsim.sim.planning.estimate import ORACLE, EstimationConfig
from blendsim.sim.planning.policies import ONE_SIDED


def test_the_full_grid_holds_every_setting_of_the_issue() -> None:
    labels = [setting_label(e) for e in settings(SCALES["full"])]
    assert len(labels) == len(set(labels)) == 1 + 2 * (3 + 4)
    assert labels[:8] == [
        "oracle",
        "0.1%, video exact",
        "1%, video exact",
        "10%, video exact",
        "1% σ0.1, video exact",
        "1% σ0.25, video exact",
        "1% σ0.5, video exact",
        "1% σ1, video exact",
    ]
    assert labels[8:] == [label.replace("exact", "sampled") for label in labels[1:8]]
    quick = [setting_label(e) for e in settings(SCALES["quick"])]
    assert quick == ["oracle", "1%, video exact", "1% σ0.5, video exact", "1%, video sampled"]


def test_run_options_name_only_what_differs_from_the_default() -> None:
    assert run_options(EstimationConfig()) == ()  # so the default's runs are fig7's, cached
    assert run_options(ORACLE) == (("estimator", "oracle"),)
    for e in settings(SCALES["full"]):
        assert EstimationConfig(**dict(run_options(e))) == e


def test_baselines_are_the_registry_s_one_sided_orders() -> None:
    assert set(BASELINES) == set(ONE_SIDED) and "blend" not in BASELINES and BASELINES[0] == "dfs"


def _row(policy: str, tok: float, seed: int = 0) -> dict[str, object]:
    return {"trace": "t", "seed": seed, "setting": "s", "policy": policy, "throughput_tok_s": tok}


def test_the_strongest_baseline_is_the_row_s_fastest_and_dfs_wins_a_tie() -> None:
    others = [p for p in BASELINES if p != "dfs"]
    rows = add_ratios(
        [_row("dfs", 100.0), *(_row(p, 100.0) for p in others), _row("blend", 120.0)]
        + [_row("dfs", 100.0, 1), _row(others[0], 130.0, 1), _row("blend", 117.0, 1)]
    )
    tie = [r for r in rows if r["seed"] == 0]
    assert {r["best_baseline"] for r in tie} == {"dfs"}
    assert all(r["blend_vs_dfs"] == pytest.approx(1.2) == r["blend_vs_best"] for r in tie)
    won = [r for r in rows if r["seed"] == 1]
    assert {r["best_baseline"] for r in won} == {others[0]}
    assert all(r["blend_vs_best"] == pytest.approx(0.9) for r in won)
    s = spread(rows, "t", "s")
    assert s["blend_vs_dfs"] == pytest.approx((1.185, 1.17, 1.2))
    assert s["blend_vs_best"] == pytest.approx((1.05, 0.9, 1.2))
    assert s["best"] == f"dfs ×1, {others[0]} ×1"


def test_requests_replaces_the_scale_s_preset_size(tmp_path: Path) -> None:
    out = tmp_path / "rob"
    assert main(["--tiny", "--requests", "300", "--jobs", "1", "--out", str(out)]) == 0
    with open(out / "robustness.csv", newline="") as fh:
        assert {r["requests"] for r in csv.DictReader(fh)} == {"300"}
    assert json.loads((out / "manifest.json").read_text())["identity"]["preset_requests"] == 300
    with pytest.raises(SystemExit) as exc:
        main(["--tiny", "--requests", "0", "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2
