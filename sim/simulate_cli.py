"""``blendsim simulate``: plan a trace with one or all policies and simulate it on a modelled engine."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from blendsim.common_cli import (
    add_disagg_options,
    add_dp_option,
    add_engine_options,
    add_estimation_options,
    add_hardware_options,
    add_policy_option,
    add_seed_option,
    check_counts,
    disagg_config,
    engine_configs,
    estimation_config,
    policies,
)
from blendsim.limits import check_run_size
from blendsim.output_folders import OutputFolder, output_folder
from blendsim.outputs import json_text
from blendsim.provenance import provenance
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.policies import ONE_SIDED
from blendsim.sim.planning.policies.auto import ranking_line
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.layout import DisaggConfig
from blendsim.sim.simulation.result import SimResult

PROGRESS_MIN_REQUESTS = 20_000  # show a progress bar on runs at least this large (on a terminal)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate policies' plans of a trace on a modelled engine",
        description="Plan TRACE with each policy and simulate it on each engine: continuous batching with "
        "chunked prefill, a radix prefix cache, preemption; step times from a profile. "
        "Prints throughput, the fraction of the practical optimum and the prefix sharing kept.",
    )
    p.add_argument("trace", metavar="TRACE", help="trace file (Parquet, from `blendsim trace make`)")
    one_sided = ", ".join(ONE_SIDED)
    add_policy_option(
        p, narrower=f"; with --disagg every one-sided policy: {one_sided}, which auto then ranks"
    )
    add_hardware_options(p, model_default=None)
    add_dp_option(p)
    add_seed_option(p)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="also write per policy and engine: result JSON, per-step and per-chunk Parquet, "
        "Chrome trace and admission order",
    )
    add_estimation_options(p)
    add_engine_options(p, several_engines=True)
    add_disagg_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_counts(args)
    disagg = disagg_config(args)
    names = _policies(args, disagg)
    configs = engine_configs(args)
    estimation = estimation_config(args)
    out = output_folder(args.out, "--out", "simulate") if args.out is not None else contextlib.nullcontext()
    with out as folder:
        return _simulate(args, names, configs, disagg, estimation, folder)


def _simulate(
    args: argparse.Namespace,
    names: tuple[str, ...],
    configs: list[EngineConfig],
    disagg: DisaggConfig | None,
    estimation: EstimationConfig,
    folder: OutputFolder | None,
) -> int:
    from blendsim.common_cli import DEFAULT_MODEL
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import resolve_profile
    from blendsim.sim.simulation.run import simulate_policy
    from blendsim.traces.io import read_trace

    trace = read_trace(args.trace)
    check_run_size(len(trace), args.dp, subject=f"the trace's {len(trace):,} requests")
    model = get_model(args.model or str(trace.metadata.get("model") or DEFAULT_MODEL))
    profile = resolve_profile(args.gpu, args.profile, model, args.tp)
    progress = len(trace) >= PROGRESS_MIN_REQUESTS and sys.stderr.isatty()
    record = {"seed": args.seed, "profile": args.profile or profile.name}
    tables = []
    for config in configs:
        results: list[SimResult] = []
        for policy in names:
            res = simulate_policy(
                trace,
                policy,
                model,
                profile,
                config,
                args.dp,
                args.seed,
                disagg=disagg,
                estimation=estimation,
                progress=progress,
            )
            res.extra["provenance"] = provenance(**record)
            results.append(res)
            if folder is not None:
                res.write(folder.work)
        rows = [r.to_dict() for r in results]
        dfs = next((r for r in rows if r["policy"] == "dfs"), None)
        for r in rows:
            if dfs is not None and dfs["throughput_tok_s"] > 0:
                r["speedup_vs_dfs"] = r["throughput_tok_s"] / dfs["throughput_tok_s"]
        tables.append(rows)
    if folder is not None:
        folder.record.update(record)
    if args.json:
        flat = [r for rows in tables for r in rows]
        print(json_text(flat if len(flat) > 1 else flat[0]))
        return 0
    replicas = f"dp={args.dp}" if disagg is None else _layout_title(tables[0][0]["disagg"], disagg)
    for config, rows in zip(configs, tables, strict=True):
        title = (
            f"{args.trace}: {len(trace)} requests, {model.name} on {profile.name}"
            f" (tp={args.tp}, {replicas}), {config.engine} engine"
        )
        print(format_table(rows, title))
    if folder is not None:
        print(f"wrote {len(names) * len(configs)} result(s) into {folder.path}/", file=sys.stderr)
    return 0


def _policies(args: argparse.Namespace, disagg: DisaggConfig | None) -> tuple[str, ...]:
    """The policies to run: ``--policy``'s; under ``--disagg``, ``all`` means the one-sided ones."""
    from blendsim.sim.planning.policies import ONE_SIDED, check_disaggregable

    names = policies(args)
    if disagg is None:
        return names
    if args.policy == "all":
        return tuple(n for n in names if n in ONE_SIDED)
    for name in names:
        check_disaggregable(name)
    return names


def _layout_title(link: dict[str, Any], disagg: DisaggConfig) -> str:
    bandwidth = link["bandwidth"]
    speed = "instant" if bandwidth == float("inf") else f"{bandwidth / 1e9:,.0f} GB/s"
    return (
        f"{disagg.label}: {disagg.prefill} prefill + {disagg.decode} decode replicas, "
        f"KV over {link['link']} ({speed} each way)"
    )


def format_table(rows: list[dict[str, Any]], title: str) -> str:
    """A readable table of results, one row per policy."""
    head = (
        "policy",
        "tok/s",
        "tok/s/GPU",
        "makespan",
        "% optimum",
        "% bound",
        "sharing",
        "% of s_o",
        "preempt",
        "steps",
        "vs dfs",
        "plan s",
        "sim s",
    )
    lines = [title]
    body = []
    for r in rows:
        kept = r["sharing"] / r["optimal_sharing"] * 100 if r["optimal_sharing"] else 100.0
        body.append(
            (
                r["policy"],
                f"{r['throughput_tok_s']:,.0f}",
                f"{r['throughput_per_gpu_tok_s']:,.0f}",
                _duration(r["makespan_s"]),
                f"{r['fraction_of_optimal'] * 100:.1f}",
                f"{r['breakdown']['fraction_of_step_bound'] * 100:.1f}" if "breakdown" in r else "-",
                f"{r['sharing']:.3f}",
                f"{kept:.1f}",
                str(r["preemptions"]),
                str(r["steps"]),
                f"{r['speedup_vs_dfs']:.3f}x" if "speedup_vs_dfs" in r else "-",
                f"{r['plan_s']:.2f}",
                f"{r['sim_s']:.2f}",
            )
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines.append(fmt.format(*head))
    lines.extend(fmt.format(*b) for b in body)
    if rows:
        r = rows[0]
        lines.append(
            f"optimum: {_duration(r['optimal_time_s'])} at sharing {r['optimal_sharing']:.3f} "
            f"({r['total_tokens'] / r['optimal_time_s']:,.0f} tok/s); "
            f"{r['total_tokens']:,} tokens"
        )
        lines.extend(ranking_line(a["auto"]) for a in rows if "auto" in a)
        if "roles" in r.get("breakdown", {}):
            lines.extend(_layout_lines(r))
        if "breakdown" in r:
            b = r["breakdown"]
            lines.append(
                f"step bound: {_duration(b['step_bound_s'])} (the optimum plus the fixed cost of "
                f"{b['step_bound_steps']:,} steps, the longest output {b['critical_path_steps']:,}); "
                f"'% bound' = step bound / makespan"
            )
    return "\n".join(lines)


def _layout_lines(r: dict[str, Any]) -> list[str]:
    """Where a disaggregated run's time went (the first row's), side by side per role."""
    lines = []
    for role, b in r["breakdown"]["roles"].items():
        lines.append(
            f"{role} side ({r['policy']}, {b['replicas']} replica(s)): stepping {100 * b['busy']:.0f} % of "
            f"the time; {100 * b['flop_utilization']:.1f} % of peak FLOP/s, "
            f"{100 * b['bandwidth_utilization']:.1f} % of peak memory bandwidth"
        )
    t = r["disagg"]
    if t["transfers"]:
        lines.append(
            f"KV link: {t['transfers']:,} transfers, {t['transfer_bytes'] / 1e9:,.1f} GB, busy "
            f"{100 * t['link_busy']:.2f} % of each prefill replica's time; KV waited for decode room "
            f"{t['wait_for_decode_s_mean'] * 1e3:.1f} ms on average, "
            f"{t['wait_for_decode_s_max']:.2f} s at most"
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"
