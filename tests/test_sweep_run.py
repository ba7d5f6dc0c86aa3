"""`blendsim sweep` end to end on small real traces: outputs, infeasible cells, resume, bad input, Ray."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.experiments.grid import SweepSpec
from blendsim.experiments.sweep import run_sweep

SMALL = ["--requests", "1000", "--jobs", "1", "--quiet"]


def sweep(*args: str) -> int:
    return main(["sweep", *args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sweep_writes_results_table_and_records_infeasible_cells(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    assert sweep("--sharing-ratio", "0.35", "--densities", "0.9,1.3,40", "--out", str(out), *SMALL) == 0
    text = capsys.readouterr().out
    assert "1000 requests per trace" in text
    assert "blend/dfs" in text and "infeasible d=40.00 s=0.35: density 40.0" in text
    rows = read_csv(out / "results.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 * 4 and {r["policy"] for r in ok} == {"fifo", "dfs", "balance", "blend"}
    bad = [r for r in rows if r["status"] == "infeasible"]
    assert len(bad) == 1 and bad[0]["target_density"] == "40.0" and "feasible density" in bad[0]["reason"]
    for density in ("0.9", "1.3"):
        cell = {r["policy"]: r for r in ok if r["target_density"] == density}
        blend = float(cell["blend"]["throughput_tok_s"])
        assert float(cell["blend"]["blend_speedup"]) == pytest.approx(1.0)
        assert float(cell["dfs"]["blend_speedup"]) == pytest.approx(
            blend / float(cell["dfs"]["throughput_tok_s"])
        )
        assert abs(float(cell["blend"]["trace_density"]) - float(density)) <= 0.03 * float(density)
        for r in cell.values():
            assert 0 < float(r["fraction_of_optimal"]) <= 1.0
    data = json.loads((out / "results.json").read_text())
    assert data["spec"]["densities"] == [0.9, 1.3, 40.0] and len(data["cells"]) == 3
    assert data["summary"]["overlap"]["dfs"]["cells"] == 2
    assert (out / "sweep.png").stat().st_size > 10_000


def test_rerun_skips_finished_cells_and_other_settings_are_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    args = [
        "--sharing-ratio",
        "0.05",
        "--densities",
        "0.9,1.4",
        "--policies",
        "dfs,blend",
        "--out",
        str(out),
        *SMALL,
    ]
    assert sweep(*args) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    capsys.readouterr()
    assert sweep(*args) == 0
    assert "resuming: 2 of 2 cells already finished" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == before
    # a wider grid with the same settings reuses the two cells and runs only the new one
    assert sweep(*[a if a != "0.9,1.4" else "0.9,1.1,1.4" for a in args]) == 0
    assert "resuming: 2 of 3 cells" in capsys.readouterr().out
    # different settings into the same directory: one clear line, exit 2, nothing touched
    assert sweep(*[a if a != "1000" else "1200" for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "requests 1000 there, 1200 now" in err
    assert len(list((out / "cells").iterdir())) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--densities", "1.4:0.8:0.1"], "bad density range '1.4:0.8:0.1'"),
        (["--densities", "0.9;1.0"], "bad density spec"),
        (["--sharing-ratio", "1.5"], "sharing ratio 1.5 is outside [0, 1)"),
        (["--policies", "lifo"], "unknown policy 'lifo'"),
        (["--engine", "both", "--mix", "burstgpt,nosuch"], "unknown trace source 'nosuch'"),
        (["--gpu", "tpu-v9"], "unknown GPU profile 'tpu-v9'"),
        (["--jobs", "0"], "--jobs must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert sweep(*args, "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o" / "cells").exists()


def test_unwritable_out_dir(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert sweep("--out", str(blocker / "sub"), *SMALL) == 2
    assert "which is a file" in capsys.readouterr().err


def test_two_dimensional_grid_in_processes_gives_heatmaps(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grid"
    assert (
        sweep(
            "--sharing-ratios",
            "0.05,0.35",
            "--densities",
            "0.9,1.3",
            "--policies",
            "dfs,blend",
            "--engine",
            "both",
            "--requests",
            "1000",
            "--jobs",
            "2",
            "--quiet",
            "--out",
            str(out),
        )
        == 0
    )
    rows = read_csv(out / "results.csv")
    assert len(rows) == 4 * 2 * 2
    assert {(r["engine"], r["target_sharing"]) for r in rows} == {
        (e, s) for e in ("overlap", "serial") for s in ("0.05", "0.35")
    }
    assert (out / "sweep.png").stat().st_size > 10_000
    assert "engine: serial" in capsys.readouterr().out


def test_killed_sweep_resumes_without_losing_cells(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = [
        "sweep",
        "--sharing-ratio",
        "0.35",
        "--densities",
        "0.8:1.4:0.1",
        "--policies",
        "dfs,blend",
        "--requests",
        "20000",
        "--jobs",
        "1",
        "--quiet",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "blendsim.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while not list(out.glob("cells/*.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = {p.name: p.read_bytes() for p in out.glob("cells/*.json")}
    assert 1 <= len(first) < 7, "the sweep finished before it could be killed"
    assert not [p for p in (out / "cells").iterdir() if p.suffix != ".json"], "a torn temporary file was left"
    result = subprocess.run(
        [sys.executable, "-m", "blendsim.cli", *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert f"resuming: {len(first)} of 7 cells already finished" in result.stdout
    after = {p.name: p.read_bytes() for p in out.glob("cells/*.json")}
    assert len(after) == 7 and all(after[k] == v for k, v in first.items())
    assert len(read_csv(out / "results.csv")) == 7 * 2


def test_ray_missing_or_unreachable_is_one_clear_line(tmp_path: Path, capsys) -> None:
    assert sweep("--ray", "127.0.0.1:1", "--out", str(tmp_path / "r"), *SMALL[:2], "--quiet") == 2
    err = capsys.readouterr().err
    try:
        import ray  # noqa: F401
    except ImportError:
        assert "needs Ray, an optional extra: pip install 'blendsim[ray]'" in err
    else:
        assert "Ray cluster at '127.0.0.1:1' does not answer" in err
    assert not (tmp_path / "r" / "cells").exists()


def test_cells_run_as_ray_tasks_on_a_local_instance(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'blendsim[ray]')")
    spec = SweepSpec(densities=(0.9, 1.3), sharings=(0.35,), policies=("dfs", "blend"), requests=1000)
    outcome = run_sweep(spec, tmp_path / "ray", ray_address="local", progress=False)
    assert not outcome.failed and len(outcome.records) == 2
    assert all(r["status"] == "ok" and len(r["results"]) == 2 for r in outcome.records)
    local = run_sweep(spec, tmp_path / "local", jobs=1, progress=False)
    # the same cell gives the same numbers wherever it runs (only the wall times differ)
    for ra, rb in zip(outcome.records, local.records, strict=True):
        for a, b in zip(ra["results"], rb["results"], strict=True):
            assert a["throughput_tok_s"] == b["throughput_tok_s"] and a["steps"] == b["steps"]
    with pytest.raises(UserError, match="does not answer"):
        run_sweep(spec, tmp_path / "x", ray_address="127.0.0.1:1", progress=False)
