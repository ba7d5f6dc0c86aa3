"""Figure 8: prefill/decode disaggregation (1P1D, 1P2D, 2P1D, 1P3D) against colocated engines.

Per-GPU throughput (all prompt and output tokens / makespan / GPUs) on the four presets. The
disaggregated layouts run serial engines in DFS order over NVLink, as the paper's DistServe-style
setup on SGLang (§7.1); beside them, on one GPU each: DFS on a serial engine (vLLM-/SGLang-DFS), DFS
on an overlapping engine (NanoFlow-DFS) and blend on an overlapping engine (BlendServe). Paper
(§7.3, blendserve.md): disaggregation is below colocated vLLM in every configuration and worse with
more prefill GPUs (2P1D below 1P2D), because the workloads are dominated by decode tokens; the
prefill side leaves memory bandwidth idle and the decode side compute; BlendServe is best.

The second panel is the run's own explanation (``breakdown.roles``): the FLOP/s and memory
bandwidth each side achieved over the peaks (gpt-fast style: FLOPs done, weights and KV read).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blendsim.experiments.common import PRESETS, FigureConfig, Run, mean, preset_recipe, run_all, tagged
from blendsim.experiments.figure_base import FigureOutput, figure_main
from blendsim.experiments.plotting import bar_groups, new_figure, save_png, thousands
from blendsim.experiments.results import write_csv

LAYOUTS = ((1, 1), (1, 2), (2, 1), (1, 3))  # (prefill, decode) replicas, the paper's four
COLOCATED = (("dfs", "serial"), ("dfs", "overlap"), ("blend", "overlap"))  # (policy, engine), one GPU
NAMES = {
    ("dfs", "serial"): "vLLM-DFS",
    ("dfs", "overlap"): "NanoFlow-DFS",
    ("blend", "overlap"): "BlendServe",
}
COLORS = {
    "1P1D": "#c6dbef",
    "1P2D": "#9ecae1",
    "2P1D": "#6baed6",
    "1P3D": "#3182bd",
    "vLLM-DFS": "#7f7f7f",
    "NanoFlow-DFS": "#1f77b4",
    "BlendServe": "#d62728",
}
UTILIZATION = (
    ("prefill", "flop_utilization", "prefill: FLOP/s"),
    ("prefill", "bandwidth_utilization", "prefill: bandwidth"),
    ("decode", "flop_utilization", "decode: FLOP/s"),
    ("decode", "bandwidth_utilization", "decode: bandwidth"),
)
COLUMNS = (
    "trace",
    "config",
    "layout",
    "policy",
    "engine",
    "gpus",
    "requests",
    "throughput_tok_s",
    "throughput_per_gpu_tok_s",
    "per_gpu_vs_vllm_dfs",
    "makespan_s",
    "steps",
    "prefill_steps",
    "decode_steps",
    "prefill_busy",
    "prefill_flop_utilization",
    "prefill_bandwidth_utilization",
    "decode_busy",
    "decode_flop_utilization",
    "decode_bandwidth_utilization",
    "link_busy",
    "kv_wait_for_decode_s_mean",
    "longest_output_ready_s",
)


def runs_for(cfg: FigureConfig) -> list[Run]:
    """Per preset: the four layouts (serial, DFS), then the three colocated configurations."""
    out = []
    for preset in PRESETS:
        recipe = preset_recipe(cfg, preset)
        out += [Run(recipe, "dfs", "serial", cfg.gpu, seed=cfg.seed, disagg=layout) for layout in LAYOUTS]
        out += [Run(recipe, policy, engine, cfg.gpu, seed=cfg.seed) for policy, engine in COLOCATED]
    return out


def flatten(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's configuration name, its per-GPU throughput over vLLM-DFS's, and its roles'
    breakdown as columns."""
    vllm = {r["trace"]: r["throughput_per_gpu_tok_s"] for r in rows if _name(r) == "vLLM-DFS"}
    for r in rows:
        r["config"] = _name(r)
        r["per_gpu_vs_vllm_dfs"] = r["throughput_per_gpu_tok_s"] / vllm[r["trace"]]
        for role, b in r["breakdown"].get("roles", {}).items():
            for key in ("steps", "busy", "flop_utilization", "bandwidth_utilization"):
                r[f"{role}_{key}"] = b[key]
        link = r.get("disagg")
        if link:
            r["link_busy"] = link["link_busy"]
            r["kv_wait_for_decode_s_mean"] = link["wait_for_decode_s_mean"]
            r["longest_output_ready_s"] = link["longest_output_ready_s"]
    return rows


def _name(row: dict[str, Any]) -> str:
    layout = str(row["layout"])
    return layout if layout != "colocated" else NAMES[(row["policy"], row["engine"])]


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    fig, axes = new_figure(1, 2, width=7.0, height=4.4, gridspec_kw={"width_ratios": [1.6, 1.0]})
    names = [f"{p}P{d}D" for p, d in LAYOUTS] + [NAMES[c] for c in COLOCATED]

    def value(trace: str, name: str, key: str) -> float:
        return float(next(r[key] for r in rows if r["trace"] == trace and r["config"] == name))

    ax = axes[0, 0]
    series = {n: [value(t, n, "throughput_per_gpu_tok_s") for t in PRESETS] for n in names}
    notes = {n: [f"{value(t, n, 'per_gpu_vs_vllm_dfs'):.2f}x" for t in PRESETS] for n in names}
    groups = [t.replace("trace", "Trace#") for t in PRESETS]
    bar_groups(
        ax,
        groups,
        series,
        ylabel="per-GPU throughput (tokens/s/GPU)",
        annotations=notes,
        labels={n: n for n in names},
        colors=COLORS,
    )
    thousands(ax)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.set_title("bar labels: per-GPU throughput / vLLM-DFS's", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper right", frameon=False)
    ax = axes[0, 1]
    layouts = names[: len(LAYOUTS)]
    util = {
        label: [100 * mean([value(t, n, f"{role}_{key}") for t in PRESETS]) for n in layouts]
        for role, key, label in UTILIZATION
    }
    colors = dict(zip(util, ("#fdae6b", "#e6550d", "#a1d99b", "#31a354"), strict=True))
    bar_groups(
        ax,
        layouts,
        util,
        ylabel="% of peak (mean of the four presets)",
        labels={k: k for k in util},
        colors=colors,
    )
    ax.set_ylim(0, 115)
    ax.set_title("what each side uses of its GPUs", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper center", frameon=False)
    fig.suptitle(title, fontsize=9.5)
    return save_png(fig, path)


def claims(rows: list[dict[str, Any]]) -> list[str]:
    """The paper's claims, checked on ``rows``, each explained from the breakdown where it fails."""
    disagg = [r for r in rows if r["layout"] != "colocated"]
    below = [r for r in disagg if r["per_gpu_vs_vllm_dfs"] < 1]
    ratios = [r["per_gpu_vs_vllm_dfs"] for r in disagg]
    one = [r for r in disagg if r["config"] == "1P1D"]
    vllm = [r for r in rows if r["config"] == "vLLM-DFS"]
    lines = [
        f"fig8: per GPU, disaggregation is below colocated serial DFS (vLLM-DFS) in {len(below)} of "
        f"{len(disagg)} configurations (paper: all); disaggregated / vLLM-DFS {min(ratios):.2f}-"
        f"{max(ratios):.2f}x. 1P1D's decode GPU alone runs {mean([r['decode_steps'] for r in one]):,.0f} "
        f"steps, vLLM-DFS {mean([r['steps'] for r in vllm]):,.0f} (means of the presets): fed at the "
        "prefill GPU's pace, it decodes small batches, and each of its steps pays the weight read that "
        "colocated decodes share with the prefill chunks of their step"
    ]
    pairs = {(r["trace"], r["config"]): r for r in disagg}
    worse = [
        t
        for t in PRESETS
        if pairs[(t, "2P1D")]["throughput_per_gpu_tok_s"] < pairs[(t, "1P2D")]["throughput_per_gpu_tok_s"]
    ]
    line = f"fig8: 2P1D is below 1P2D on {len(worse)} of {len(PRESETS)} presets (paper: all)"
    others = [t for t in PRESETS if t not in worse]
    if others:
        t = others[0]
        p2d1, p1d2 = pairs[(t, "2P1D")], pairs[(t, "1P2D")]
        after = {
            k: r["makespan_s"] - r["longest_output_ready_s"] for k, r in (("1P2D", p1d2), ("2P1D", p2d1))
        }
        share = p1d2["longest_output_ready_s"] / (p1d2["prefill_busy"] * p1d2["makespan_s"])
        line += (
            f"; where not ({', '.join(others)}) the longest output sets the makespan: on {t} its prompt "
            f"is done at {p1d2['longest_output_ready_s']:,.0f} s with one prefill GPU, after "
            f"{100 * share:.0f} % of that GPU's prefill work (DFS order puts the videos last), and at "
            f"{p2d1['longest_output_ready_s']:,.0f} s with two; decoding goes on "
            f"{after['1P2D']:,.0f} s (1P2D) and {after['2P1D']:,.0f} s (2P1D) after it, so 2P1D ends "
            f"{p1d2['makespan_s'] - p2d1['makespan_s']:,.0f} s sooner"
        )
    lines.append(line)
    lines.append(
        "fig8: 1P1D, mean of the presets: the prefill GPU reaches "
        f"{100 * mean([r['prefill_flop_utilization'] for r in one]):.1f} % of peak FLOP/s and "
        f"{100 * mean([r['prefill_bandwidth_utilization'] for r in one]):.1f} % of peak bandwidth, stepping "
        f"{100 * mean([r['prefill_busy'] for r in one]):.0f} % of the time; the decode GPU "
        f"{100 * mean([r['decode_flop_utilization'] for r in one]):.1f} % of FLOP/s and "
        f"{100 * mean([r['decode_bandwidth_utilization'] for r in one]):.1f} % of bandwidth (paper: the "
        "prefill side idles memory bandwidth, the decode side compute)"
    )
    best = []
    for t in PRESETS:
        mine = [r for r in rows if r["trace"] == t]
        top = max(mine, key=lambda r: r["throughput_per_gpu_tok_s"])
        best.append(top["config"] == "BlendServe")
    blend = [r["per_gpu_vs_vllm_dfs"] for r in rows if r["config"] == "BlendServe"]
    lines.append(
        f"fig8: BlendServe has the highest per-GPU throughput on {sum(best)} of {len(PRESETS)} presets "
        f"(paper: all), {min(blend):.2f}-{max(blend):.2f}x vLLM-DFS"
    )
    return lines


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    runs = runs_for(cfg)
    rows = flatten(tagged(runs, run_all(runs, cfg, cache, "fig8")))
    n = rows[0]["requests"]
    title = (
        f"Figure 8: P/D disaggregation (serial engines, DFS order, KV over NVLink) vs colocated, "
        f"{cfg.model} on {cfg.gpu}, {n:,} requests per preset"
    )
    paths = [write_csv(rows, out / "fig8.csv", COLUMNS), plot(rows, out / "fig8.png", title)]
    return FigureOutput("fig8", paths, claims(rows))


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig8", run, argv)


if __name__ == "__main__":
    sys.exit(main())
