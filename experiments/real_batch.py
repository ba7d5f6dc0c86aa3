"""The real-batch proof: the proof batch planned, run on vLLM in several orders, and compared.

``python -m blendsim.experiments.real_batch --out DIR (--profile FILE | --gpu NAME)`` does, as a user
would, with the CLI:

1. ``DIR/batch.jsonl``: the proof batch (:mod:`blendsim.experiments.proof_batch`; ``--requests N``
   keeps its first N lines);
2. per order (``--orders``, default ``fifo,dfs,blend``: the file as given, prefix-tree order, the
   BlendServe plan): ``blendsim plan-batch ... --choose ORDER`` into ``DIR/ORDER/ordered.jsonl`` and
   its plan (output lengths from a pilot, ``--pilot RATE``, run once and reused by every order; or
   ``max_tokens`` with ``--pilot 0``);
3. ``blendsim run-batch`` of each ordered file into ``DIR/ORDER/results.jsonl`` (one engine each);
4. the comparison (``DIR/comparison.json`` and ``.md``, and with ``--docs FILE`` the table written
   into that file between its ``real-batches-table`` markers): per order the measured throughput,
   prefix-cache hits (vLLM's ``num_cached_tokens``, summed) and preemptions, each against the plan's
   prediction and against a re-simulation of the run as it happened: the ordered file imported with
   the output lengths vLLM produced (``--lengths-from`` the results), in the order vLLM first scheduled
   the requests, at the plan's engine (block size, KV capacity, token budget, running cap), FCFS.

Timings need a quiet machine; the cache hits and preemptions do not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.child import blendsim_command
from blendsim.errors import UserError
from blendsim.executor.batch_plan import BatchPlan, plan_path
from blendsim.executor.compare import signed_error
from blendsim.executor.run_batch import run_record_path
from blendsim.experiments.proof_batch import SOURCE, write_batch
from blendsim.outputs import atomic_output, atomic_outputs, write_json

TABLE_MARK = "<!-- real-batches-table -->"
LABELS = {"fifo": "file order", "dfs": "dfs order", "blend": "planned (blend)"}


def blendsim(*args: str) -> None:
    """Run a blendsim command in a child process; a failure is a UserError with its last line."""
    proc = subprocess.run(blendsim_command(None, *args), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"`blendsim {' '.join(args[:2])} ...` failed (exit {proc.returncode}): {tail}")


def run_orders(args: argparse.Namespace, out: Path) -> None:
    batch = out / "batch.jsonl"
    n = write_batch(batch, args.requests, args.max_tokens_cap)
    print(f"{batch}: {n} requests from {SOURCE}", flush=True)
    common = [*_profile_args(args), "--model-dir", args.model_dir, "--kv-cache-gib", str(args.kv_cache_gib)]
    pilot_results: Path | None = None
    for order in args.orders:
        ordered = out / order / "ordered.jsonl"
        ordered.parent.mkdir(parents=True, exist_ok=True)
        lengths: list[str] = []
        if args.pilot > 0:
            lengths = ["--pilot", str(args.pilot)]
            if pilot_results is not None:
                lengths += ["--pilot-results", str(pilot_results)]
        print(f"{order}: plan-batch", flush=True)
        blendsim("plan-batch", str(batch), "-o", str(ordered), "--choose", order, "-q", *lengths, *common)
        if args.pilot > 0 and pilot_results is None:
            pilot_results = ordered.with_name("ordered.pilot-results.jsonl")
        print(f"{order}: run-batch", flush=True)
        blendsim(
            "run-batch",
            str(ordered),
            "-o",
            str(out / order / "results.jsonl"),
            "-q",
            "--model-dir",
            args.model_dir,
        )


def _profile_args(args: argparse.Namespace) -> list[str]:
    return ["--profile", args.profile] if args.profile else ["--gpu", args.gpu]


def resimulate(
    ordered: Path, results: Path, record: dict[str, Any], plan: BatchPlan, profile: Any, model: Any
) -> Any:
    """The run as it happened, simulated (module docstring, step 4)."""
    from blendsim.sim.planning.estimate import ORACLE
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.simulation.config import EngineConfig
    from blendsim.sim.simulation.run import simulate
    from blendsim.traces.importers import ImportOptions, import_trace

    opts = ImportOptions(
        block_size=int(plan.engine["block_size"]),
        model_dir=plan.extra.get("model_dir") or None,
        lengths_from=str(results),
    )
    trace = import_trace(str(ordered), "openai", opts)
    assert trace.custom_id is not None
    position = {c: k for k, c in enumerate(trace.custom_id.tolist())}
    ran = trace.subset(np.asarray([position[c] for c in record["admitted"]], dtype=np.int64))
    config = EngineConfig(**plan.engine)  # vLLM's block size, KV capacity, token budget, running cap
    fcfs = make_plan(ran, "fifo", model, profile.hardware, estimation=ORACLE)
    return simulate(ran, fcfs, model, profile, config)


def compare(out: Path, orders: list[str], profile: Any, model: Any, model_dir: str) -> list[dict[str, Any]]:
    rows = []
    for order in orders:
        ordered, results = out / order / "ordered.jsonl", out / order / "results.jsonl"
        plan = BatchPlan.read(plan_path(ordered))
        plan.extra.setdefault("model_dir", model_dir)
        record = json.loads(run_record_path(str(results)).read_text())
        measured, predicted = record["measured"], plan.predicted
        sim = resimulate(ordered, results, record, plan, profile, model)
        sim_cached = int(np.asarray(sim.admission["cached_tokens"]).sum())
        rows.append(
            {
                "order": order,
                "requests": measured["finished_requests"],
                "measured_tok_s": measured["throughput_tok_s"],
                "predicted_tok_s": predicted["throughput_tok_s"],
                "predicted_error": signed_error(measured["throughput_tok_s"], predicted["throughput_tok_s"]),
                "resimulated_tok_s": sim.throughput_tok_s,
                "resimulated_error": signed_error(measured["throughput_tok_s"], sim.throughput_tok_s),
                "measured_cached": measured["cached_tokens"],
                "resimulated_cached": sim_cached,
                "cached_error": signed_error(measured["cached_tokens"], sim_cached)
                if measured["cached_tokens"]
                else 0.0,
                "predicted_cached": predicted["cached_tokens"],
                "measured_preemptions": measured["preemptions"],
                "resimulated_preemptions": sim.preemptions,
                "predicted_preemptions": predicted["preemptions"],
                "measured_steps": measured["steps"],
                "resimulated_steps": sim.steps_run,
                "output_tokens_measured": measured["total_tokens"],
                "lengths": plan.lengths.get("source"),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lengths = rows[0]["lengths"] if rows else "-"
    lines = [
        TABLE_MARK,
        f"Measured {meta['date']} on {meta['machine']}; {meta['requests']} requests, profile "
        f"{meta['profile']}, output lengths for the predictions from {lengths}; written by "
        f"`{meta['command']}`.",
        "",
        "| order | measured tok/s | predicted (error) | re-simulated (error) | cached tokens: vLLM | "
        "re-simulated (error) | predicted | preemptions: vLLM / re-sim / predicted | steps: vLLM / re-sim |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_row(r) for r in rows]
    lines.append(TABLE_MARK)
    return "\n".join(lines)


def _row(r: dict[str, Any]) -> str:
    cells = [
        LABELS.get(r["order"], r["order"]),
        f"{r['measured_tok_s']:,.1f}",
        f"{r['predicted_tok_s']:,.1f} ({r['predicted_error']:+.1%})",
        f"{r['resimulated_tok_s']:,.1f} ({r['resimulated_error']:+.1%})",
        f"{r['measured_cached']:,}",
        f"{r['resimulated_cached']:,} ({r['cached_error']:+.2%})",
        f"{r['predicted_cached']:,}",
        f"{r['measured_preemptions']} / {r['resimulated_preemptions']} / {r['predicted_preemptions']}",
        f"{r['measured_steps']} / {r['resimulated_steps']}",
    ]
    return "| " + " | ".join(cells) + " |"


def write_docs(path: Path, table: str) -> None:
    """Replace the text between the two table markers of ``path`` with ``table`` (markers included)."""
    text = path.read_text()
    parts = text.split(TABLE_MARK)
    if len(parts) != 3:
        raise UserError(f"{path} needs two {TABLE_MARK} lines around the table to replace")
    with atomic_output(path) as tmp:
        tmp.write_text(parts[0] + table + parts[2])


def main(argv: list[str] | None = None) -> int:
    from blendsim.executor.model_prep import default_model_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", required=True, metavar="DIR", help="where the batch, plans, results and tables go"
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--profile", help="profile of the vLLM engine (`blendsim executor calibrate`)")
    src.add_argument("--gpu", help="a built-in profile (pipeline checks only: not a CPU's timing)")
    ap.add_argument("--requests", type=int, help="the proof batch's first N requests (default: all)")
    ap.add_argument(
        "--max-tokens-cap", type=int, metavar="N", help="cap every max_tokens at N (CI's version)"
    )
    ap.add_argument("--orders", default="fifo,dfs,blend", help="orders to run (default: fifo,dfs,blend)")
    ap.add_argument("--pilot", type=float, default=0.01, help="pilot sample rate; 0: lengths from max_tokens")
    ap.add_argument("--kv-cache-gib", type=float, default=2.0, help="vLLM's KV cache (default 2.0)")
    ap.add_argument("--model-dir", default=str(default_model_dir()), help="the model (default: SmolLM2-135M)")
    ap.add_argument("--compare-only", action="store_true", help="compare the runs already in --out")
    ap.add_argument("--docs", metavar="FILE", help="write the table into FILE between its markers")
    args = ap.parse_args(argv)
    args.orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    out = Path(args.out)
    try:
        return _main(args, out)
    except UserError as exc:
        print(f"real_batch: error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace, out: Path) -> int:
    import datetime
    import platform

    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import resolve_profile

    out.mkdir(parents=True, exist_ok=True)
    model = get_model("smollm2-135m")
    profile = resolve_profile(args.gpu, args.profile, model)
    if not args.compare_only:
        run_orders(args, out)
    rows = compare(out, args.orders, profile, model, args.model_dir)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + " (vLLM-CPU, SmolLM2-135M)",
        "requests": rows[0]["requests"] if rows else 0,
        "profile": profile.name,
        "command": "python -m blendsim.experiments.real_batch " + " ".join(sys.argv[1:]),
    }
    table = markdown(rows, meta)
    with atomic_outputs(out / "comparison.json", out / "comparison.md") as tmp:
        write_json(tmp[0], {"meta": meta, "rows": rows}, indent=1)
        tmp[1].write_text(table + "\n")
    print(table)
    if args.docs:
        write_docs(Path(args.docs), table)
        print(f"wrote the table into {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
