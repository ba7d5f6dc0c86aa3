"""Every figure/table script on tiny real traces: PNG + CSV written, contents consistent, CLI wiring."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from blendsim.cli import main
from blendsim.experiments.figure_base import FIGURES, FigureOutput, run_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, FigureOutput]]:
    out = tmp_path_factory.mktemp("figures")
    results = run_figures(list(FIGURES), out, "tiny")
    failed = [r for r in results if isinstance(r, str)]
    assert not failed, failed
    return out, {r.name: r for r in results if isinstance(r, FigureOutput)}


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def f(value: str) -> float:
    return float(value)


@pytest.mark.parametrize("name", FIGURES)
def test_each_script_writes_png_and_csv_and_compares_with_the_paper(tiny, name: str) -> None:
    out, results = tiny
    res = results[name]
    pngs = [p for p in res.paths if p.suffix == ".png"]
    csvs = [p for p in res.paths if p.suffix == ".csv"]
    assert pngs and len(pngs) == len(csvs)
    for p in pngs:
        assert p.parent == out and p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 15_000
    for p in csvs:
        assert len(rows(p)) > 0
    assert res.headline and all(line.startswith(name.split("_")[0][:3]) for line in res.headline)


def test_fig7_covers_presets_policies_engines(tiny) -> None:
    out, _ = tiny
    table = rows(out / "fig7.csv")
    assert len(table) == 4 * 4 * 2
    for r in table:
        assert 0 < f(r["fraction_of_optimal"]) <= 1.0
        assert f(r["throughput_tok_s"]) <= f(r["optimal_throughput_tok_s"]) * (1 + 1e-9)
        if r["policy"] == "blend":
            assert f(r["blend_speedup"]) == pytest.approx(1.0)


def test_fig8_compares_every_layout_per_gpu_with_the_colocated_engines(tiny) -> None:
    out, results = tiny
    table = rows(out / "fig8.csv")
    configs = {"1P1D", "1P2D", "2P1D", "1P3D", "vLLM-DFS", "NanoFlow-DFS", "BlendServe"}
    assert {(r["trace"], r["config"]) for r in table} == {
        (t, c) for t in ("trace1", "trace2", "trace3", "trace4") for c in configs
    }
    for r in table:
        gpus = 1 if r["layout"] == "colocated" else sum(int(x) for x in r["layout"][:-1].split("P"))
        assert int(r["gpus"]) == gpus
        assert f(r["throughput_per_gpu_tok_s"]) == pytest.approx(f(r["throughput_tok_s"]) / gpus)
        if r["config"] == "vLLM-DFS":
            assert f(r["per_gpu_vs_vllm_dfs"]) == pytest.approx(1.0)
        if r["layout"] != "colocated":
            assert r["policy"] == "dfs" and r["engine"] == "serial"
            assert 0 < f(r["prefill_busy"]) <= 1 and 0 < f(r["decode_busy"]) <= 1
            # the paper's reading, which the model reproduces at any scale
            assert f(r["prefill_bandwidth_utilization"]) < f(r["decode_bandwidth_utilization"])
            assert f(r["prefill_flop_utilization"]) > f(r["decode_flop_utilization"])
    assert any("2P1D is below 1P2D" in line for line in results["fig8"].headline)


def test_table1_labels_the_fit_residuals(tiny) -> None:
    out, results = tiny
    table = rows(out / "table1.csv")
    assert {(r["op"], r["batch"]) for r in table} == {
        (op, b) for op in ("GEMM", "Attention") for b in ("512", "768", "1024")
    }
    for r in table:
        assert f(r["fit_residual"]) == pytest.approx(f(r["model_ms"]) / f(r["paper_measured_ms"]) - 1)
        assert abs(f(r["fit_residual"])) < 0.03  # the built-in's sources: residuals < 0.4 % and < 3 %
        assert f(r["datasheet_peak_ms"]) < f(r["paper_measured_ms"])
    assert all("fit residuals" in line for line in results["table1"].headline)


def test_fig4_density_falls_with_the_output(tiny) -> None:
    out, _ = tiny
    table = rows(out / "fig4.csv")
    grid = [r for r in table if r["kind"] == "grid"]
    by_p: dict[str, list[tuple[float, float]]] = {}
    for r in grid:
        by_p.setdefault(r["prompt_len"], []).append((f(r["output_len"]), f(r["rho"])))
    assert len(by_p) == 61 and all(len(v) == 61 for v in by_p.values())
    for column in by_p.values():
        rho = [x for _, x in sorted(column)]
        assert all(a > b for a, b in zip(rho, rho[1:], strict=False))
    sources = {r["name"]: f(r["rho"]) for r in table if r["kind"] == "source"}
    assert sources["mmlu"] > 1 > sources["openvid"]


def test_fig9_sharing_never_beats_the_optimum(tiny) -> None:
    out, _ = tiny
    for r in rows(out / "fig9.csv"):
        assert 0 <= f(r["sharing"]) <= f(r["optimal_sharing"]) + 1e-9


def test_step_series_figures(tiny) -> None:
    out, _ = tiny
    assert {r["policy"] for r in rows(out / "fig3.csv")} == {"dfs", "blend"}
    series = rows(out / "fig10.csv")
    assert {r["policy"] for r in series} == {"dfs", "balance", "blend"}
    for policy in ("dfs", "blend"):
        mine = [r for r in series if r["policy"] == policy]
        assert int(mine[0]["first_step"]) == 1
        assert all(
            int(a["last_step"]) + 1 == int(b["first_step"]) for a, b in zip(mine, mine[1:], strict=False)
        )


def test_grids_have_every_cell(tiny) -> None:
    out, _ = tiny
    grid = rows(out / "fig11.csv")
    assert {(r["target_density"], r["target_sharing"]) for r in grid} == {
        (d, s) for d in ("0.9", "1.3") for s in ("0.05", "0.35")
    }
    wildchat = rows(out / "fig15.csv")
    assert {r["target_sharing"] for r in wildchat} == {"0.25", "0.35"}
    assert (out / "fig11_cells" / "manifest.json").exists()  # the grid ran through the resumable sweep


def test_table3_scaling_is_relative_to_dp1(tiny) -> None:
    out, _ = tiny
    table = rows(out / "table3.csv")
    assert {r["dp"] for r in table} == {"1", "2", "4"}
    assert all(f(r["scaling"]) == pytest.approx(1.0) for r in table if r["dp"] == "1")


def test_beyond_paper_studies(tiny) -> None:
    out, _ = tiny
    gpus = {(r["trace"], r["gpu"]): f(r["density_on_gpu"]) for r in rows(out / "gpu_profiles.csv")}
    # rho scales with bandwidth / FLOP/s: an H100 sees the same trace as less compute-dense than an A100
    assert gpus[("trace1", "h100-sxm")] < gpus[("trace1", "a100-80g")]
    svo = rows(out / "serial_vs_overlap.csv")
    assert {r["engine"] for r in svo} == {"overlap", "serial"}


def test_figures_cli_and_module_entry_point(tmp_path: Path, capsys) -> None:
    assert main(["figures", "--tiny", "--only", "fig9,table3", "--out", str(tmp_path), "--jobs", "1"]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "## fig9" in summary and "## table3" in summary and "paper" in summary
    assert main(["figures", "--only", "fig99", "--out", str(tmp_path)]) == 2
    assert "unknown figure script 'fig99'" in capsys.readouterr().err
    run = subprocess.run(
        [sys.executable, "-m", "blendsim.experiments.fig9", "--tiny", "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m" / "fig9.png").exists() and "fig9: wrote" in run.stdout


def test_robustness_ratios_come_from_the_rows_throughputs(tiny) -> None:
    from blendsim.experiments.robustness import BASELINES, POLICIES

    out, _ = tiny
    table = rows(out / "robustness.csv")
    settings = ["oracle", "1%, video exact", "1% σ0.5, video sampled"]  # the tiny scale's
    assert [r["setting"] for r in table[:: len(POLICIES)][: len(settings)]] == settings
    groups: dict[tuple[str, str, str], dict[str, dict[str, str]]] = {}
    for r in table:
        groups.setdefault((r["trace"], r["seed"], r["setting"]), {})[r["policy"]] = r
    assert set(groups) == {("trace1", seed, s) for seed in ("0", "1") for s in settings}
    for members in groups.values():
        assert set(members) == set(POLICIES)
        tok = {p: f(r["throughput_tok_s"]) for p, r in members.items()}
        best = max(BASELINES, key=tok.__getitem__)
        for r in members.values():
            assert r["best_baseline"] == best and f(r["best_baseline_tok_s"]) == tok[best]
            assert f(r["blend_vs_dfs"]) == pytest.approx(tok["blend"] / tok["dfs"])
            assert f(r["blend_vs_best"]) == pytest.approx(tok["blend"] / tok[best])
    # the seed draws the trace too: the same setting and policy see different workloads
    dfs = {(r["seed"], r["setting"]): r["throughput_tok_s"] for r in table if r["policy"] == "dfs"}
    assert dfs[("0", "oracle")] != dfs[("1", "oracle")]
    noisy = [r for r in table if r["setting"].startswith("1% σ0.5")]
    assert all(r["length_noise"] == "0.5" and r["video_lengths"] == "sampled" for r in noisy)
    summary = (out / "robustness.md").read_text()
    assert all(f"| {s} |" in summary for s in settings)
