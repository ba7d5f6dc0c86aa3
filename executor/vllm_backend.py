"""Replay a policy's admission order on vLLM, one ``LLMEngine.step()`` at a time, and measure it.

The trace's prompts are token ids derived from segment ids (:mod:`blendsim.executor.prompts`), and
``SamplingParams(max_tokens=d, ignore_eos=True)`` forces each trace output length; the loop is the
one driver (:mod:`blendsim.executor.vllm_driver`). The checks here (the trace fits the model's
context and the KV cache; the order is a permutation) go before any engine is built.

One engine per process: a second engine does not free the first's memory, so run each policy with
:func:`blendsim.executor.isolate.run_isolated` (a fresh subprocess).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.executor.pacing import Pacing
from blendsim.executor.prompts import PromptBuilder
from blendsim.executor.records import ExecResult
from blendsim.executor.vllm_driver import Driver, TraceFeed, start_engine
from blendsim.executor.vllm_engine import VllmRunConfig, kv_cache_tokens, read_model_config, vllm_installed
from blendsim.traces.trace import Trace


def check_trace_fits(trace: Trace, config: VllmRunConfig) -> dict[str, Any]:
    """Check the trace against the model directory's context and ``config``'s KV cache (see
    :func:`check_fits`); returns the model's ``config.json``."""
    cfg = read_model_config(config.model_dir)
    kv_tokens = kv_cache_tokens(config)
    check_fits(trace, int(cfg["max_position_embeddings"]), kv_tokens, config.block_size or 128)
    return cfg


def engine_max_len(cfg: dict[str, Any], trace: Trace) -> int:
    """vLLM's ``max_model_len`` for ``trace``: its longest request, within the model's context (vLLM
    refuses a context longer than its KV cache holds, and a generated config's is 128K)."""
    longest = int((trace.prompt_len + trace.output_len).max()) if len(trace) else 1
    return min(int(cfg["max_position_embeddings"]), longest)


def check_fits(trace: Trace, max_model_len: int, kv_tokens: int, block_size: int) -> None:
    """Requests longer than the model's context or the whole KV cache are UserErrors."""
    need = trace.prompt_len + trace.output_len
    bad = np.flatnonzero(need > max_model_len)
    if len(bad):
        i = int(bad[0])
        raise UserError(
            f"request {int(trace.request_id[i])} needs {int(need[i])} tokens (prompt "
            f"{int(trace.prompt_len[i])} + output {int(trace.output_len[i])}) but the model's "
            f"context is {max_model_len}; {len(bad)} request(s) exceed it"
        )
    blocks = -(-need // block_size) * block_size
    bad = np.flatnonzero(blocks > kv_tokens)
    if len(bad):
        i = int(bad[0])
        raise UserError(
            f"request {int(trace.request_id[i])} needs {int(blocks[i])} KV tokens but the "
            f"KV cache holds {kv_tokens}; raise --kv-cache-gib"
        )


def check_order(order: np.ndarray, n: int) -> np.ndarray:
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise UserError(f"admission order must be a permutation of the trace's {n} request positions")
    return order


def run_vllm(
    trace: Trace,
    admission_order: np.ndarray,
    config: VllmRunConfig,
    *,
    policy: str = "fifo",
    max_steps: int | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    pacing: Pacing | None = None,
) -> ExecResult:
    """Replay ``admission_order`` (request positions) on a fresh in-process vLLM engine.

    Returns what was measured; with ``out_dir`` also writes it (also when interrupted, and when
    ``max_steps`` stops the run early: then ``completed`` is False). Call once per process.
    ``pacing`` makes vLLM follow the simulated timing as well as the order
    (:mod:`blendsim.executor.pacing`): the k-th request is handed over only once
    ``release_steps[k]`` steps have run, and step ``k`` runs at most ``prefill_caps[k]`` prefill
    tokens (the scheduler's token budget of that step is its running decodes plus the cap).
    """
    order = check_order(admission_order, len(trace))
    cfg = check_trace_fits(trace, config)
    started = start_engine(config, engine_max_len(cfg, trace))
    driver = Driver(
        started.engine,
        started.sched,
        trace,
        order,
        config,
        TraceFeed(trace, PromptBuilder(trace, int(cfg["vocab_size"]), seed)),
        pacing=(pacing or Pacing()).checked(len(order)),
    )
    driver.run_interruptible(max_steps)
    result = driver.result(policy, started.start_s, started.block, vllm_installed() or "vllm")
    if out_dir is not None:
        result.write(out_dir)
    return result
