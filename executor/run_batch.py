"""``blendsim run-batch``'s work: a batch file through vLLM, OpenAI output lines out, measured vs predicted.

The file runs in its own line order, through the executor's one driver
(:mod:`blendsim.executor.vllm_driver`) on an engine that detokenizes: requests handed over in file
order, vLLM's FCFS scheduler admitting them in that order (what ``vllm run-batch`` does with a file).
With a plan made for the ``replay`` target, the plan's pacing applies too: each request is released at
its planned step and each step's prefill is capped as planned. Every finished request is appended to
the results file at once (:class:`~blendsim.executor.batch_output.ResultsFile`), so a killed run loses
only what was in flight; a rerun skips every ``custom_id`` already there (then without the pacing,
which was planned for the whole file, and without a throughput comparison, which needs the whole run).

``RESULTS.run.json`` beside the results records the run: what was measured (the simulator's result
schema), the order vLLM first scheduled the requests in (``admitted``, custom ids), and the plan's
prediction with its error (``simulated / measured - 1``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.executor.batch_feed import BatchFeed, read_batch
from blendsim.executor.batch_output import ResultsFile, error_line, success_line, usage_of
from blendsim.executor.batch_plan import BatchPlan, beside
from blendsim.executor.compare import signed_error
from blendsim.executor.pacing import Pacing
from blendsim.executor.vllm_driver import Driver, start_engine
from blendsim.executor.vllm_engine import (
    VLLM_ENGINE,
    VllmRunConfig,
    kv_cache_tokens,
    read_model_config,
    vllm_installed,
)
from blendsim.outputs import write_json
from blendsim.sim.simulation.result import write_parquet
from blendsim.traces.importers.chat import PromptTokenizer

RUN_FORMAT = "blendsim-run-batch/1"
Say = Callable[[str], None]


@dataclass(frozen=True)
class RunBatchRequest:
    """What to run: the batch file, the results file, the engine, and the plan made for the file (None:
    the file alone, in its order, no pacing)."""

    batch: str
    results: str
    config: VllmRunConfig
    plan: BatchPlan | None = None
    progress: bool = False


def run_record_path(results: str) -> Path:
    """The run record beside a results file: ``x.jsonl`` -> ``x.run.json``."""
    return beside(results, ".run.json")


def run_batch(req: RunBatchRequest, say: Say) -> dict[str, Any]:
    """Run ``req`` (module docstring); the run record it wrote."""
    cfg = read_model_config(req.config.model_dir)
    tokenizer = PromptTokenizer(req.config.model_dir)
    kv_tokens = kv_cache_tokens(req.config)
    block = req.config.block_size or int(VLLM_ENGINE["block_size"])  # None: the engine's default
    feed = read_batch(req.batch, tokenizer, block, int(cfg["max_position_embeddings"]), kv_tokens)
    results = ResultsFile.open(req.results, feed.all_ids)
    resumed = len(results.done)
    if results.dropped_partial:
        say("dropped the last, unfinished line the previous run left")
    for cid, message in feed.errors.items():
        if cid not in results.done:
            results.append(error_line(cid, message))
    todo = np.asarray(
        [k for k, line in enumerate(feed.lines) if line.custom_id not in results.done], dtype=np.int64
    )
    if resumed:
        say(
            f"{resumed} of {len(feed.all_ids)} requests already in {req.results}; "
            f"running the other {len(todo)}"
        )
    record: dict[str, Any] = {
        "format": RUN_FORMAT,
        "batch": req.batch,
        "results": req.results,
        "resumed_from": resumed,
    }
    try:
        if len(todo):  # fresh: none of the runnable requests ran before (pacing and comparison apply)
            fresh = len(todo) == len(feed.lines)
            record.update(_run(req, feed.subset(todo), results, fresh=fresh, say=say))
    finally:
        results.close()
    record["errors"] = sum(1 for line in results.done.values() if line.get("error") is not None)
    record["lines"] = len(results.done)
    record["complete"] = set(results.done) == feed.all_ids
    write_json(run_record_path(req.results), record, indent=1)
    return record


def _run(
    req: RunBatchRequest, feed: BatchFeed, results: ResultsFile, fresh: bool, say: Say
) -> dict[str, Any]:
    plan = req.plan
    paced = plan is not None and plan.target == "replay" and plan.release_steps is not None
    pacing = Pacing()
    if paced and fresh:
        assert plan is not None
        rel = np.asarray(plan.release_steps, dtype=np.int64)[feed.file_index]
        pacing = Pacing(rel, plan.pacing().prefill_caps).checked(len(feed.trace))
    elif paced:
        say("a resumed run keeps the plan's order but not its pacing (planned for the whole file)")
    trace = feed.trace
    longest = int((trace.prompt_len + trace.output_len).max())
    config = VllmRunConfig(**{**req.config.as_dict(), "tokenizer": True})
    say(
        f"starting vLLM ({config.model_dir}), {len(trace)} requests"
        + (", paced by the plan" if pacing.release_steps is not None else "")
    )
    started = start_engine(config, longest)
    bar = _bar(len(trace), req.progress)
    counts = {"tokens": 0}
    model_name = str(Path(config.model_dir).name)

    def finish(pos: int, out: Any) -> None:
        line = feed.lines[pos]
        comp = out.outputs[0]
        usage = usage_of(int(trace.prompt_len[pos]), len(comp.token_ids), int(out.num_cached_tokens or 0))
        model = str(line.body.get("model") or model_name)
        results.append(
            success_line(line.custom_id, line.is_chat, model, comp.text, str(comp.finish_reason), usage)
        )
        counts["tokens"] += usage["total_tokens"]
        if bar is not None and driver.t_first is not None:
            bar.set_postfix_str(
                f"{counts['tokens'] / max(time.perf_counter() - driver.t_first, 1e-9):,.0f} tok/s"
            )
            bar.update(1)

    def reject(pos: int, message: str) -> None:
        results.append(error_line(feed.lines[pos].custom_id, f"vLLM refused the request: {message}"))

    driver = Driver(
        started.engine,
        started.sched,
        trace,
        np.arange(len(trace)),
        config,
        feed,
        pacing=pacing,
        on_finish=finish,
        on_reject=reject,
    )
    driver.run_interruptible(None)
    if bar is not None:
        bar.close()
    measured = driver.result("batch", started.start_s, started.block, vllm_installed() or "vllm")
    write_parquet(run_record_path(req.results).with_suffix(".steps.parquet"), measured.step_columns())
    out: dict[str, Any] = {
        "measured": measured.to_dict(),
        "admitted": [feed.lines[p].custom_id for p in driver.admitted_order],
        "paced": pacing.release_steps is not None,
        "interrupted": driver.interrupted,
    }
    if plan is not None and fresh and not driver.interrupted:
        predicted = plan.predicted
        out["predicted"] = {"policy": plan.policy, "target": plan.target, **predicted}
        out["throughput_error"] = signed_error(
            measured.throughput_tok_s, float(predicted["throughput_tok_s"])
        )
    return out


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="run-batch", file=sys.stderr, mininterval=0.5)


def summary_lines(record: dict[str, Any]) -> list[str]:
    """What a person reads at the end of a run."""
    lines = [
        f"{record['lines']} lines in {record['results']} ({record['errors']} error lines)"
        + ("" if record["complete"] else "; INCOMPLETE: rerun the same command to finish")
    ]
    m = record.get("measured")
    if m:
        lines.append(
            f"measured: {m['throughput_tok_s']:,.1f} tok/s ({m['total_tokens']:,} tokens in "
            f"{m['makespan_s']:.1f} s, {m['steps']} steps), prefix-cache hits {m['cached_tokens']:,} "
            f"tokens, {m['preemptions']} preemptions"
        )
    p = record.get("predicted")
    if p:
        lines.append(
            f"predicted ({p['policy']}, target {p['target']}): {p['throughput_tok_s']:,.1f} tok/s, "
            f"{p['cached_tokens']:,} cached tokens, {p['preemptions']} preemptions; "
            f"error {record['throughput_error']:+.1%} (simulated / measured - 1)"
        )
    return lines
