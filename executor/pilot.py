"""Output lengths from a pilot: run a sample of the batch on vLLM, learn the rest from it.

The paper's sampling (blendserve.md §5; :func:`blendsim.sim.planning.estimate.choose_sample`): about
``rate`` of the requests, at least one under each subtree of the prefix tree's root (each distinct
first block, in practice each system prompt), run first; every other request is estimated by the mean
measured length of the samples in the smallest subtree around it that has any, never above its own
``max_tokens``. The sample runs as a batch of its own through ``blendsim run-batch`` in a child process
(one engine per process), into ``<ordered>.pilot-results.jsonl``; those requests have then really run.
Given an earlier pilot's results (``reuse``), the same sample (same seed) is read from them instead.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

from blendsim.child import blendsim_command
from blendsim.errors import UserError
from blendsim.executor.batch_plan import beside
from blendsim.executor.vllm_engine import VllmRunConfig
from blendsim.outputs import atomic_output
from blendsim.sim.planning.estimate import choose_sample, sampled_means
from blendsim.sim.planning.tree import PrefixTree
from blendsim.traces.importers.openai import completion_tokens
from blendsim.traces.trace import Trace

Say = Callable[[str], None]


def pilot_paths(ordered: str) -> tuple[Path, Path]:
    """The pilot's sample and results files, beside the ordered file."""
    return beside(ordered, ".pilot.jsonl"), beside(ordered, ".pilot-results.jsonl")


def pilot_lengths(
    batch: str,
    trace: Trace,
    rate: float,
    ordered: str,
    config: VllmRunConfig,
    say: Say,
    seed: int = 0,
    reuse: str | None = None,
) -> Trace:
    """``trace`` (output lengths = ``max_tokens``) with lengths learnt from a pilot run (module docstring)."""
    from blendsim.executor.plan_batch import batch_lines

    if not 0 < rate <= 1:
        raise UserError(f"pilot rate must be in (0, 1], got {rate}")
    tree = PrefixTree.from_trace(trace)
    sampled = choose_sample(tree, len(trace), rate, seed)
    sample_file, results_file = pilot_paths(ordered)
    if reuse is not None:
        results_file = Path(reuse)
        say(f"pilot: reading the sample's lengths from {reuse}")
    else:
        lines = batch_lines(batch)
        with atomic_output(sample_file) as tmp, open(tmp, "wb") as fh:
            fh.writelines(lines[k] for k in np.flatnonzero(sampled))
        say(f"pilot: running {int(sampled.sum())} of {len(trace)} requests ({rate:.1%} per prefix group)")
        results_file.unlink(missing_ok=True)
        _run_child(str(sample_file), str(results_file), config)
    measured = completion_tokens(str(results_file))
    assert trace.custom_id is not None
    cids = trace.custom_id.tolist()
    ran = np.array([bool(s) and cids[k] in measured for k, s in enumerate(sampled)])
    if not ran.any():
        raise UserError(f"the pilot finished none of its requests; see {results_file}")
    true = np.array([measured.get(c, 0) for c in cids], dtype=np.int64)
    est = sampled_means(tree, np.where(ran, true, 0), ran)[tree.leaf_offset :]
    est = np.where(ran, true, np.minimum(np.rint(np.nan_to_num(est, nan=1.0)), trace.output_len))
    out = trace.subset(np.arange(len(trace)))
    out.output_len = np.maximum(est, 1).astype(np.int64)
    out.metadata = {
        **trace.metadata,
        "output_lengths": {
            "source": "pilot",
            "rate": rate,
            "sampled": int(ran.sum()),
            "pilot_results": str(results_file),
            "mean_measured": float(true[ran].mean()) if ran.any() else None,
        },
    }
    return out


def _run_child(sample: str, results: str, config: VllmRunConfig) -> None:
    args = [
        "run-batch",
        sample,
        "-o",
        results,
        "--no-plan",
        "-q",
        "--model-dir",
        config.model_dir,
        "--kv-cache-gib",
        str(config.kv_cache_gib),
        "--token-budget",
        str(config.max_num_batched_tokens),
        "--max-running",
        str(config.max_num_seqs),
        "--threads",
        str(config.threads),
    ]
    proc = subprocess.run(blendsim_command(None, *args), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the pilot run failed (exit {proc.returncode}): {tail}")
