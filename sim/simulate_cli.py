"""``blendsim simulate``: plan a trace with one or all policies and simulate it on a modelled engine."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from blendsim.errors import UserError, unknown
from blendsim.sim.simulation.config import ADMISSION_RULES, ENGINES, RIGHT_ADMISSION_RULES, EngineConfig
from blendsim.sim.simulation.result import SimResult

POLICY_CHOICES = ("fifo", "dfs", "balance", "blend")
DEFAULT_MODEL = "llama-3-8b"
PROGRESS_MIN_REQUESTS = 20_000  # show a progress bar on runs at least this large (on a terminal)


def register(subparsers: Any) -> None:
    defaults = EngineConfig()
    p = subparsers.add_parser(
        "simulate",
        help="simulate policies' plans of a trace on a modelled engine",
        description="Plan TRACE with a policy (or all four) and simulate it: continuous batching with "
        "chunked prefill, a radix prefix cache, preemption; step times from a profile. "
        "Prints throughput, the fraction of the practical optimum and the prefix sharing kept.",
    )
    p.add_argument("trace", metavar="TRACE", help="trace file (Parquet, from `blendsim trace make`)")
    p.add_argument("--policy", default="all", help="fifo, dfs, balance, blend or all (default: all)")
    p.add_argument(
        "--engine",
        default=defaults.engine,
        help="overlap (NanoFlow-like) or serial (vLLM/SGLang-like) step composition (default: overlap)",
    )
    p.add_argument(
        "--model",
        default=None,
        help=f"model name or config.json (default: the trace's model, else {DEFAULT_MODEL})",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--gpu", default=None, help="built-in profile name (default: a100-80g)")
    src.add_argument("--profile", default=None, help="profile JSON from `blendsim profile`")
    p.add_argument("--dp", type=int, default=1, help="data-parallel replicas (default: 1)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel GPUs per replica (default: 1)")
    p.add_argument(
        "--admission",
        default=defaults.admission,
        help="KV charged at admission: expected (prompt + half the estimated output) or "
        "final (prompt + all of it) (default: expected)",
    )
    p.add_argument(
        "--right-admission",
        default=defaults.right_admission,
        help="blend: how the memory-heavy stream checks its partition: projected_peak (the "
        "residents' future peak KV plus the candidate's) or expected (charges) "
        f"(default: {defaults.right_admission})",
    )
    p.add_argument(
        "--no-chunk-pacing",
        action="store_true",
        help="blend: let prefill take the whole token budget instead of the paced GEMM target",
    )
    p.add_argument(
        "--request-credit",
        action="store_true",
        help="blend: spend the right stream's E8 budget per request, (p + d/2) d KV token-steps "
        "each (default: the paper's budget from the unit's mean lengths)",
    )
    p.add_argument(
        "--no-pacing",
        action="store_true",
        help="blend: keep the paper's steady-state budgets (no critical-path pacing)",
    )
    p.add_argument(
        "--token-budget",
        type=int,
        default=defaults.token_budget,
        help=f"tokens per step, a multiple of 128 (default: {defaults.token_budget})",
    )
    p.add_argument(
        "--max-running",
        type=int,
        default=defaults.max_running,
        help=f"cap on running requests (default: {defaults.max_running})",
    )
    p.add_argument("--seed", type=int, default=0, help="planning seed (sampling, balance order)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="also write result JSON, per-step Parquet, Chrome trace and admission order",
    )
    p.set_defaults(func=run)


def _policies(name: str) -> list[str]:
    if name == "all":
        return list(POLICY_CHOICES)
    if name not in POLICY_CHOICES:
        raise unknown("policy", name, [*POLICY_CHOICES, "all"])
    return [name]


def run(args: argparse.Namespace) -> int:
    from blendsim.profiler.profile import resolve_profile
    from blendsim.profiler.specs import get_model
    from blendsim.sim.simulation.run import simulate_policy
    from blendsim.traces.io import read_trace

    policies = _policies(args.policy)
    if args.engine not in ENGINES:
        raise unknown("engine", args.engine, ENGINES)
    if args.admission not in ADMISSION_RULES:
        raise unknown("admission rule", args.admission, ADMISSION_RULES)
    if args.right_admission not in RIGHT_ADMISSION_RULES:
        raise unknown("right admission rule", args.right_admission, RIGHT_ADMISSION_RULES)
    if args.dp < 1:
        raise UserError(f"--dp must be >= 1, got {args.dp}")
    trace = read_trace(args.trace)
    model = get_model(args.model or str(trace.metadata.get("model") or DEFAULT_MODEL))
    profile = resolve_profile(args.gpu, args.profile, model, args.tp)
    config = EngineConfig(
        engine=args.engine,
        admission=args.admission,
        blend_pacing=not args.no_pacing,
        right_admission=args.right_admission,
        blend_chunk_pacing=not args.no_chunk_pacing,
        blend_request_credit=args.request_credit,
        token_budget=args.token_budget,
        max_running=args.max_running,
    )
    progress = len(trace) >= PROGRESS_MIN_REQUESTS and sys.stderr.isatty()
    results: list[SimResult] = []
    for policy in policies:
        res = simulate_policy(trace, policy, model, profile, config, args.dp, args.seed, progress=progress)
        results.append(res)
        if args.out:
            res.write(args.out)
    rows = [r.to_dict() for r in results]
    dfs = next((r for r in rows if r["policy"] == "dfs"), None)
    for r in rows:
        if dfs is not None:
            r["speedup_vs_dfs"] = r["throughput_tok_s"] / dfs["throughput_tok_s"]
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        print(
            format_table(
                rows,
                f"{args.trace}: {len(trace)} requests, {model.name} on {profile.name}"
                f" (tp={args.tp}, dp={args.dp}), {args.engine} engine",
            )
        )
    return 0


def format_table(rows: list[dict[str, Any]], title: str) -> str:
    """A readable table of results, one row per policy."""
    head = (
        "policy",
        "tok/s",
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
        if "breakdown" in r:
            b = r["breakdown"]
            lines.append(
                f"step bound: {_duration(b['step_bound_s'])} (the optimum plus the fixed cost of "
                f"{b['step_bound_steps']:,} steps, the longest output {b['critical_path_steps']:,}); "
                f"'% bound' = step bound / makespan"
            )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"
