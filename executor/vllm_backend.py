"""Replay a policy's admission order on vLLM, one ``LLMEngine.step()`` at a time, and measure it.

Requests are handed to vLLM in the admission order through a bounded waiting queue (at most
``waiting_limit`` handed over and not yet scheduled), so vLLM's FCFS scheduler admits them in that
order. Prompts are token ids derived from segment ids (:mod:`blendsim.executor.prompts`), and
``SamplingParams(max_tokens=d, ignore_eos=True)`` forces each trace output length.

Each step is timed with ``perf_counter`` around ``step()`` (schedule, model run, output processing).
Its exact composition is read from the scheduler's output of that step (the scheduler's ``schedule``
is wrapped): for every scheduled request, the tokens computed before the step ``c`` and the tokens
scheduled ``q``. A request with ``c`` < its prompt length is a prefill chunk (``q`` tokens, ``q c +
q (q + 1) / 2`` causal attention pairs); otherwise it decodes and reads ``c + q`` tokens of KV (the
simulator's convention). A request's first schedule reports its prefix-cache hit as ``c``.

One engine per process: a second engine does not free the first's memory, so run each policy with
:func:`blendsim.executor.isolate.run_isolated` (a fresh subprocess).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.executor.pacing import Pacing
from blendsim.executor.prompts import PromptBuilder, block_saved_tokens
from blendsim.executor.records import ExecResult, StepRecord
from blendsim.executor.vllm_engine import (
    GiB,
    VllmRunConfig,
    build_engine,
    read_model_config,
    scheduler_of,
    vllm_installed,
)
from blendsim.profiler.specs import model_from_config
from blendsim.traces.trace import Trace


@dataclass
class Composition:
    """One step's work as the scheduler laid it out (``BatchShape`` counts) and its first schedules'
    prefix-cache hits by vLLM request id."""

    prefill_tokens: int = 0
    prefill_seqs: int = 0
    pairs: float = 0.0
    decode_seqs: int = 0
    kv: int = 0
    preempted: int = 0
    hits: dict[str, int] = field(default_factory=dict)


class ScheduleCapture:
    """Wraps ``scheduler.schedule`` to keep each step's composition (see the module docstring)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.last: Composition | None = None
        self._schedule = scheduler.schedule
        scheduler.schedule = self._wrapped

    def _wrapped(self, *args: Any, **kwargs: Any) -> Any:
        out = self._schedule(*args, **kwargs)
        self.last = self._compose(out)
        return out

    def _compose(self, out: Any) -> Composition:
        reqs = self.scheduler.requests
        new_ids = {r.req_id for r in out.scheduled_new_reqs}
        comp = Composition(preempted=len(out.preempted_req_ids or ()))
        for rid, q in out.num_scheduled_tokens.items():
            req = reqs[rid]
            before = int(req.num_computed_tokens) - int(q)  # schedule() has already advanced it
            prompt = int(req.num_prompt_tokens)
            if before < prompt:
                comp.prefill_tokens += q
                comp.prefill_seqs += 1
                comp.pairs += q * before + q * (q + 1) / 2.0
            else:
                comp.decode_seqs += 1
                comp.kv += before + q
            if rid in new_ids:
                comp.hits[rid] = before
        return comp


def check_trace_fits(trace: Trace, config: VllmRunConfig) -> dict[str, Any]:
    """Check the trace against the model directory's context and ``config``'s KV cache (see
    :func:`check_fits`); returns the model's ``config.json``."""
    cfg = read_model_config(config.model_dir)
    kv_bytes = model_from_config(Path(config.model_dir) / "config.json").kv_bytes_per_token
    kv_tokens = int(config.kv_cache_gib * GiB) // kv_bytes
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
    max_len = engine_max_len(cfg, trace)
    t0 = time.perf_counter()
    engine = build_engine(config, max_len)
    start_s = time.perf_counter() - t0
    sched = scheduler_of(engine)
    block = int(
        sched.kv_cache_manager.block_size
        if hasattr(sched.kv_cache_manager, "block_size")
        else engine.vllm_config.cache_config.block_size
    )
    driver = Driver(
        engine,
        sched,
        trace,
        order,
        config,
        PromptBuilder(trace, int(cfg["vocab_size"]), seed),
        pacing=(pacing or Pacing()).checked(len(order)),
    )
    try:
        driver.run(max_steps)
    except KeyboardInterrupt:
        driver.interrupted = True
    result = driver.result(policy, start_s, block, vllm_installed() or "vllm")
    if out_dir is not None:
        result.write(out_dir)
    return result


class Driver:
    """The step loop and its bookkeeping (one trace through one engine; several drivers may use the
    same engine one after the other if they share its ``capture``)."""

    def __init__(
        self,
        engine: Any,
        sched: Any,
        trace: Trace,
        order: np.ndarray,
        config: VllmRunConfig,
        prompts: PromptBuilder,
        capture: ScheduleCapture | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        from vllm import SamplingParams

        self.engine, self.sched, self.trace, self.order, self.config = engine, sched, trace, order, config
        self.prompts = prompts
        self.sampling = SamplingParams
        self.capture = capture or ScheduleCapture(sched)
        self.pending = deque(int(x) for x in order)
        self.pacing = pacing or Pacing()
        rel = self.pacing.release_steps
        self.release = deque(int(x) for x in rel) if rel is not None else None
        self.full_budget = int(sched.max_num_scheduled_tokens)
        self.waiting: set[str] = set()  # handed to vLLM, not yet scheduled
        self.position_of: dict[str, int] = {}
        self.admitted_order: list[int] = []  # positions in the order vLLM first scheduled them
        self.records: list[StepRecord] = []
        self.cached_tokens = 0
        self.finished: dict[int, int] = {}  # position -> output tokens produced
        self.preemptions = 0
        self.interrupted = False
        self.t_first: float | None = None
        self.t_last = 0.0
        total_blocks = int(sched.kv_cache_manager.block_pool.num_gpu_blocks)
        self.kv_capacity = total_blocks * int(engine.vllm_config.cache_config.block_size)

    def _top_up(self, idle: bool = False) -> None:
        """Hand requests over up to the waiting limit; under pacing only released ones (or, when the
        engine is idle, the next one: waiting for a release would only add empty steps)."""
        while self.pending and len(self.waiting) < self.config.waiting_limit:
            if self.release is not None:
                if self.release[0] > len(self.records) and not idle:
                    return
                self.release.popleft()
                idle = False
            pos = self.pending.popleft()
            params = self.sampling(
                max_tokens=int(self.trace.output_len[pos]), ignore_eos=True, temperature=0.0, detokenize=False
            )
            # vLLM may suffix the id internally (its scheduler sees the returned one)
            rid = self.engine.add_request(str(pos), {"prompt_token_ids": self.prompts.tokens(pos)}, params)
            self.waiting.add(rid)
            self.position_of[rid] = pos

    def run(self, max_steps: int | None) -> None:
        """Step until every request finished or ``max_steps`` ran; the engine's full token budget is
        restored afterwards (another driver may use the engine next)."""
        try:
            self._run(max_steps)
        finally:
            self.sched.max_num_scheduled_tokens = self.full_budget

    def _run(self, max_steps: int | None) -> None:
        while True:
            self._top_up()
            if not self.engine.has_unfinished_requests():
                if not self.pending:
                    return
                self._top_up(idle=True)
            if max_steps is not None and len(self.records) >= max_steps:
                return
            self.capture.last = None
            cap = self._apply_cap()
            t_start = time.perf_counter()
            if self.t_first is None:
                self.t_first = t_start
            outputs = self.engine.step()
            t_end = time.perf_counter()
            self.t_last = t_end
            self._record(t_end - t_start, t_end - self.t_first, outputs, cap)

    def _apply_cap(self) -> int:
        """Set the scheduler's token budget for the next step from the pacing's prefill cap; returns it."""
        k = len(self.records)
        cap = self.pacing.cap(k)
        if cap >= 0 or self.sched.max_num_scheduled_tokens != self.full_budget:
            decoding = sum(1 for r in self.sched.running if r.num_computed_tokens >= r.num_prompt_tokens)
            self.sched.max_num_scheduled_tokens = self.pacing.token_budget(k, decoding, self.full_budget)
        return cap

    def _record(self, step_s: float, at: float, outputs: list[Any], cap: int = -1) -> None:
        comp = self.capture.last or Composition()
        hits = comp.hits
        admitted = 0
        cached = 0
        for rid, hit in hits.items():
            if rid in self.waiting:  # first schedule (a preempted request's return is not counted)
                self.waiting.discard(rid)
                self.admitted_order.append(self.position_of[rid])
                admitted += 1
                cached += hit
        self.cached_tokens += cached
        self.preemptions += comp.preempted
        done = 0
        for out in outputs:
            if out.finished:
                done += 1
                self.finished[int(out.request_id)] = len(out.outputs[0].token_ids)
        usage = float(self.sched.kv_cache_manager.usage)
        self.records.append(
            StepRecord(
                step=len(self.records),
                time=at,
                step_s=step_s,
                prefill_tokens=comp.prefill_tokens,
                prefill_seqs=comp.prefill_seqs,
                prefill_attn_pairs=comp.pairs,
                decode_seqs=comp.decode_seqs,
                decode_kv_tokens=comp.kv,
                running=len(self.sched.running),
                kv_used_tokens=int(round(usage * self.kv_capacity)),
                cached_tokens=cached,
                admitted=admitted,
                finished=done,
                preempted=comp.preempted,
                waiting=len(self.waiting) + len(self.pending),
                prefill_cap=cap,
            )
        )

    def wrong_outputs(self) -> list[int]:
        """Positions that finished with another output length than the trace's."""
        return [p for p, k in self.finished.items() if k != int(self.trace.output_len[p])]

    def result(self, policy: str, start_s: float, block: int, software: str) -> ExecResult:
        tr = self.trace
        pos = np.fromiter(self.finished, dtype=np.int64, count=len(self.finished))
        wrong = [int(tr.request_id[p]) for p in self.wrong_outputs()]
        total = int(tr.prompt_len[pos].sum() + tr.output_len[pos].sum()) if len(pos) else 0
        all_tokens = int(tr.prompt_len.sum() + tr.output_len.sum())
        bound = block_saved_tokens(tr, self.order, block)
        makespan = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        return ExecResult(
            policy=policy,
            backend="vllm",
            device=self.config.device,
            engine="serial",
            requests=len(tr),
            finished_requests=len(self.finished),
            total_tokens=total,
            makespan_s=makespan,
            steps=self.records,
            preemptions=self.preemptions,
            cached_tokens=self.cached_tokens,
            optimal_sharing=tr.sharing(),
            block_sharing_bound=bound / all_tokens if all_tokens else 0.0,
            engine_start_s=start_s,
            wall_s=makespan,
            interrupted=self.interrupted,
            wrong_lengths=wrong,
            admitted_order=self.admitted_order,
            config={
                **self.config.as_dict(),
                "engine_block_size": block,
                "software": software,
                "kv_capacity_tokens": self.kv_capacity,
            },
        )
