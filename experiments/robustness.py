"""Beyond the paper: blend's gain when the output-length estimates are off (issue 15, item 7).

For each preset, estimation setting and seed (a *row*), blend and every baseline the policy registry
holds (:data:`~blendsim.sim.planning.policies.ONE_SIDED`: every order but blend, so new baselines
join without an edit here) are simulated on the overlapping engine; each row reports blend ÷ dfs and
blend ÷ the row's strongest baseline, named. The settings (:func:`settings`), in plotting order:

* ``oracle``: the true lengths (the same as sampling 100 %: a sampled request's length is known);
* for video lengths ``exact`` (the paper's: video output is deterministic) and ``sampled`` (videos
  estimated like every other source): the sampled estimator at each ``cfg.sample_rates`` (for each
  of ``cfg.video_lengths``), then multiplicative noise σ in ``cfg.noise_levels`` on the default
  estimate, sampled at 1 % (for each of ``cfg.noise_video_lengths``), which is what ``blendsim
  simulate --length-noise σ [--video-lengths sampled]`` runs. Noise is not crossed with the other
  sample rates: the rate and the noise each move one thing away from the default.

Seed ``k`` (``cfg.seed`` … ``cfg.seed + cfg.robustness_seeds - 1``) is both the trace's seed (the
preset drawn anew: which videos, which prompts) and the planning seed (which requests are sampled,
the noise draw, balance's shuffle), so the spread over seeds is the workload's and the estimator's
together. Seed ``cfg.seed`` draws the trace every other figure uses, and the default setting's runs
carry no options, so fig7's cached runs serve them.

This study replaced ``estimation_sensitivity`` (blend ÷ dfs against the sample rate and against
noise on oracle lengths, seed 0, two presets): its rows are the oracle and sampled rows here.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from blendsim.experiments.common import FigureConfig, Run, preset_recipe, run_all
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.results import write_csv
from blendsim.outputs import atomic_output
from blendsim.sim.planning.estimate import ORACLE, EstimationConfig
from blendsim.sim.planning.policies import ONE_SIDED

BASELINES = ("dfs", *(p for p in ONE_SIDED if p != "dfs"))  # dfs first: it wins an exact tie
POLICIES = (*BASELINES, "blend")
DEFAULT = EstimationConfig()
COLUMNS = (
    "trace",
    "seed",
    "setting",
    "estimator",
    "sample_rate",
    "length_noise",
    "video_lengths",
    "policy",
    "requests",
    "throughput_tok_s",
    "fraction_of_optimal",
    "length_error",
    "blend_vs_dfs",
    "best_baseline",
    "best_baseline_tok_s",
    "blend_vs_best",
)


def settings(cfg: FigureConfig) -> list[EstimationConfig]:
    """The estimation settings of the study, in plotting order (module docstring)."""
    out = [ORACLE]
    for video in dict.fromkeys((*cfg.video_lengths, *cfg.noise_video_lengths)):
        if video in cfg.video_lengths:
            out += [EstimationConfig(sample_rate=r, video_lengths=video) for r in cfg.sample_rates]
        if video in cfg.noise_video_lengths:
            out += [EstimationConfig(length_noise=s, video_lengths=video) for s in cfg.noise_levels]
    return out


def setting_label(e: EstimationConfig) -> str:
    """``oracle``, ``1%, video exact``, ``1% σ0.5, video sampled``."""
    if e.estimator == "oracle":
        return "oracle" + (f" σ{e.length_noise:g}" if e.length_noise else "")
    noise = f" σ{e.length_noise:g}" if e.length_noise else ""
    return f"{100 * e.sample_rate:g}%{noise}, video {e.video_lengths}"


def run_options(e: EstimationConfig) -> tuple[tuple[str, Any], ...]:
    """The fields of ``e`` that differ from the default estimation: the run's options (the default
    setting has none, so its runs are the other figures' cached runs)."""
    return tuple(
        (f.name, getattr(e, f.name)) for f in fields(e) if getattr(e, f.name) != getattr(DEFAULT, f.name)
    )


def seeds(cfg: FigureConfig) -> range:
    return range(cfg.seed, cfg.seed + cfg.robustness_seeds)


def study_runs(cfg: FigureConfig) -> list[tuple[str, Run]]:
    """(setting label, run) of every row's policies, trace-major so a worker reuses one build."""
    return [
        (
            setting_label(e),
            Run(
                replace(preset_recipe(cfg, t), seed=s), p, "overlap", cfg.gpu, seed=s, options=run_options(e)
            ),
        )
        for t in cfg.robustness_presets
        for s in seeds(cfg)
        for e in settings(cfg)
        for p in POLICIES
    ]


def result_row(label: str, run: Run, res: dict[str, Any]) -> dict[str, Any]:
    est = res["estimation"]
    return {
        "trace": run.trace.name,
        "seed": run.seed,
        "setting": label,
        **{k: est.get(k) for k in ("estimator", "sample_rate", "length_noise", "video_lengths")},
        "policy": res["policy"],
        "requests": res["requests"],
        "throughput_tok_s": res["throughput_tok_s"],
        "fraction_of_optimal": res["fraction_of_optimal"],
        "length_error": est.get("length_error"),
    }


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row (trace, seed, setting): blend ÷ dfs, the strongest baseline (the highest throughput of
    :data:`BASELINES`; dfs on an exact tie, then registry order) and blend ÷ it, on every member."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["trace"], r["seed"], r["setting"]), []).append(r)
    for members in groups.values():
        tok = {r["policy"]: float(r["throughput_tok_s"]) for r in members}
        best = max((p for p in BASELINES if p in tok), key=tok.__getitem__)
        for r in members:
            r.update(
                blend_vs_dfs=tok["blend"] / tok["dfs"],
                best_baseline=best,
                best_baseline_tok_s=tok[best],
                blend_vs_best=tok["blend"] / tok[best],
            )
    return rows


def study_rows(cfg: FigureConfig, cache: Path | None) -> list[dict[str, Any]]:
    labelled = study_runs(cfg)
    results = run_all([r for _, r in labelled], cfg, cache, "robustness")
    return add_ratios(
        [result_row(label, run, res) for (label, run), res in zip(labelled, results, strict=True)]
    )


def spread(rows: Sequence[dict[str, Any]], trace: str, setting: str) -> dict[str, Any]:
    """Over the seeds of one (trace, setting): median, min, max of both ratios; best baselines named."""
    mine = [r for r in rows if r["trace"] == trace and r["setting"] == setting and r["policy"] == "blend"]
    out: dict[str, Any] = {"seeds": len(mine)}
    for key in ("blend_vs_dfs", "blend_vs_best"):
        xs = [float(r[key]) for r in mine]
        out[key] = (statistics.median(xs), min(xs), max(xs))
    names = [str(r["best_baseline"]) for r in mine]
    out["best"] = ", ".join(f"{n} ×{names.count(n)}" if len(names) > 1 else n for n in sorted(set(names)))
    return out


def summary_tables(rows: Sequence[dict[str, Any]], traces: Sequence[str], labels: Sequence[str]) -> str:
    """Markdown. An overview, one line per setting: per preset blend ÷ dfs / blend ÷ the strongest
    baseline, medians over seeds, and the worst seed's ÷ strongest; then per preset both ratios as
    median (min–max over seeds) with the strongest baselines named."""

    def cell(x: tuple[float, float, float]) -> str:
        return f"{x[0]:.3f} ({x[1]:.3f}–{x[2]:.3f})" if x[1] != x[2] else f"{x[0]:.3f}"

    lines = [
        "blend ÷ dfs / blend ÷ the strongest baseline (medians over seeds; worst seed's ÷ strongest)",
        "",
        "| setting | " + " | ".join(traces) + " |",
        "|---|" + "---:|" * len(traces),
    ]
    for label in labels:
        spreads = [spread(rows, t, label) for t in traces]
        lines.append(
            f"| {label} | "
            + " | ".join(
                f"{x['blend_vs_dfs'][0]:.2f} / {x['blend_vs_best'][0]:.2f} ({x['blend_vs_best'][1]:.2f})"
                for x in spreads
            )
            + " |"
        )
    for t in traces:
        lines += [
            "",
            f"{t}:",
            "",
            "| setting | blend ÷ dfs | blend ÷ strongest | strongest |",
            "|---|---:|---:|---|",
        ]
        for label in labels:
            x = spread(rows, t, label)
            lines.append(
                f"| {label} | {cell(x['blend_vs_dfs'])} | {cell(x['blend_vs_best'])} | {x['best']} |"
            )
    return "\n".join(lines) + "\n"


def _range(rows: Sequence[dict[str, Any]], key: str) -> str:
    """``lo–hi x, below 1 on k of n rows (lowest: setting, seed s[, vs baseline])`` of one ratio."""
    low = min(rows, key=lambda r: float(r[key]))
    versus = f", vs {low['best_baseline']}" if key == "blend_vs_best" else ""
    return (
        f"{float(low[key]):.3f}–{max(float(r[key]) for r in rows):.3f}x, below 1 on "
        f"{sum(float(r[key]) < 1 for r in rows)} of {len(rows)} rows "
        f"(lowest: {low['setting']}, seed {low['seed']}{versus})"
    )


def headline(rows: Sequence[dict[str, Any]], traces: Sequence[str]) -> list[str]:
    blend = [r for r in rows if r["policy"] == "blend"]
    lines = []
    for t in traces:
        mine = [r for r in blend if r["trace"] == t]
        lines.append(
            f"robustness [{t}]: blend ÷ dfs {_range(mine, 'blend_vs_dfs')}; "
            f"÷ strongest baseline {_range(mine, 'blend_vs_best')}"
        )
    one = setting_label(DEFAULT)
    for t in traces if any(r["setting"] == one for r in blend) else ():
        at1, exact = spread(rows, t, one)["blend_vs_dfs"][0], spread(rows, t, "oracle")["blend_vs_dfs"][0]
        lines.append(
            f"robustness [{t}]: blend ÷ dfs median {at1:.3f}x sampling 1 % vs {exact:.3f}x exact lengths "
            "(= 100 %; paper: 1 % about equal to 100 %)"
        )
    return lines


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    from blendsim.experiments.robustness_figure import plot

    rows = study_rows(cfg, cache)
    labels = [setting_label(e) for e in settings(cfg)]
    traces = list(cfg.robustness_presets)
    table = out / "robustness.md"
    with atomic_output(table) as tmp:
        tmp.write_text(summary_tables(rows, traces, labels))
    paths = [
        write_csv(rows, out / "robustness.csv", COLUMNS),
        plot(rows, traces, labels, cfg, out / "robustness.png"),
        table,
    ]
    return FigureOutput("robustness", paths, headline(rows, traces))


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("robustness", run, argv)


if __name__ == "__main__":
    sys.exit(main())
