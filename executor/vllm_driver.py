"""The one vLLM driver: an ``LLMEngine`` stepped one ``step()`` at a time in a given admission order,
each step timed and its exact composition read from the scheduler.

Requests are handed to vLLM in the admission order through a bounded waiting queue (at most
``waiting_limit`` handed over and not yet scheduled), so vLLM's FCFS scheduler admits them in that
order. What a request is (its prompt token ids and ``SamplingParams``) comes from a :class:`Feed`:
:class:`TraceFeed` for a trace replay (prompts from segment ids, ``max_tokens`` forced with
``ignore_eos``), ``executor.batch_feed.BatchFeed`` for a real batch (tokenized prompts, the body's
sampling). A pacing (:mod:`blendsim.executor.pacing`) holds requests back until the steps the
simulator admitted them at, and caps each step's prefill tokens.

Each step is timed with ``perf_counter`` around ``step()`` (schedule, model run, output processing);
its exact composition comes from the scheduler's output of that step
(:mod:`blendsim.executor.schedule_capture`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from blendsim.executor.pacing import Pacing
from blendsim.executor.prompts import PromptBuilder, block_saved_tokens
from blendsim.executor.records import ExecResult, StepRecord
from blendsim.executor.schedule_capture import Composition, ScheduleCapture
from blendsim.executor.vllm_engine import VllmRunConfig, build_engine, scheduler_of
from blendsim.traces.trace import Trace


class Feed(Protocol):
    """What each request (a trace position) is: prompt token ids and ``SamplingParams`` arguments.
    ``forced_lengths``: every output must have the trace's length (a replay); a real batch's stop
    where the model or the body says."""

    @property
    def forced_lengths(self) -> bool: ...

    def prompt(self, pos: int) -> list[int]: ...

    def sampling(self, pos: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TraceFeed:
    """A trace replay: prompts from segment ids, greedy, exactly the trace's output lengths."""

    trace: Trace
    prompts: PromptBuilder
    forced_lengths: bool = True

    def prompt(self, pos: int) -> list[int]:
        return self.prompts.tokens(pos)

    def sampling(self, pos: int) -> dict[str, Any]:
        return {
            "max_tokens": int(self.trace.output_len[pos]),
            "ignore_eos": True,
            "temperature": 0.0,
            "detokenize": False,
        }


@dataclass(frozen=True)
class Started:
    """A built engine, its scheduler, its KV block and how long it took to build."""

    engine: Any
    sched: Any
    block: int
    start_s: float


def start_engine(config: VllmRunConfig, max_model_len: int) -> Started:
    """Build the in-process engine (:func:`blendsim.executor.vllm_engine.build_engine`), timed."""
    t0 = time.perf_counter()
    engine = build_engine(config, max_model_len)
    start_s = time.perf_counter() - t0
    sched = scheduler_of(engine)
    manager = sched.kv_cache_manager
    block = (
        manager.block_size if hasattr(manager, "block_size") else engine.vllm_config.cache_config.block_size
    )
    return Started(engine, sched, int(block), start_s)


Finish = Callable[[int, Any], None]  # (position, vLLM RequestOutput) when a request finishes
Reject = Callable[[int, str], None]  # (position, vLLM's reason) when vLLM refuses a request


class Driver:
    """The step loop and its bookkeeping (one trace through one engine; several drivers may use the
    same engine one after the other if they share its ``capture``). ``on_finish`` sees every
    finished request's output; ``on_reject`` every request vLLM refuses at ``add_request`` (the run
    goes on without it; without ``on_reject`` the refusal is raised)."""

    def __init__(
        self,
        engine: Any,
        sched: Any,
        trace: Trace,
        order: np.ndarray,
        config: VllmRunConfig,
        feed: Feed,
        capture: ScheduleCapture | None = None,
        pacing: Pacing | None = None,
        on_finish: Finish | None = None,
        on_reject: Reject | None = None,
    ) -> None:
        from vllm import SamplingParams

        self.engine, self.sched, self.trace, self.order, self.config = engine, sched, trace, order, config
        self.feed, self.on_finish, self.on_reject = feed, on_finish, on_reject
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
        self.rejected: dict[int, str] = {}  # position -> why vLLM refused it
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
            try:
                params = self.sampling(**self.feed.sampling(pos))
                # vLLM may suffix the id internally (its scheduler sees the returned one)
                rid = self.engine.add_request(str(pos), {"prompt_token_ids": self.feed.prompt(pos)}, params)
            except (ValueError, TypeError) as exc:  # vLLM's validation of a request
                if self.on_reject is None:
                    raise
                self.rejected[pos] = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                self.on_reject(pos, self.rejected[pos])
                continue
            self.waiting.add(rid)
            self.position_of[rid] = pos

    def run(self, max_steps: int | None) -> None:
        """Step until every request finished or ``max_steps`` ran; the engine's full token budget is
        restored afterwards (another driver may use the engine next)."""
        try:
            self._run(max_steps)
        finally:
            self.sched.max_num_scheduled_tokens = self.full_budget

    def run_interruptible(self, max_steps: int | None) -> None:
        """:meth:`run`, and a Ctrl-C ends it early with ``interrupted`` set (what ran is kept)."""
        try:
            self.run(max_steps)
        except KeyboardInterrupt:
            self.interrupted = True

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
                pos = int(out.request_id)
                self.finished[pos] = len(out.outputs[0].token_ids)
                if self.on_finish is not None:
                    self.on_finish(pos, out)
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
        """Positions that finished with another output length than the trace's (a forced feed only)."""
        if not self.feed.forced_lengths:
            return []
        return [p for p, k in self.finished.items() if k != int(self.trace.output_len[p])]

    def result(self, policy: str, start_s: float, block: int, software: str) -> ExecResult:
        tr = self.trace
        pos = np.fromiter(self.finished, dtype=np.int64, count=len(self.finished))
        wrong = [int(tr.request_id[p]) for p in self.wrong_outputs()]
        total = int(tr.prompt_len[pos].sum()) + sum(self.finished.values()) if len(pos) else 0
        all_tokens = int(tr.prompt_len.sum() + tr.output_len.sum())
        bound = block_saved_tokens(tr, self.order, block)
        makespan = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        return ExecResult(
            policy=policy,
            backend="vllm",
            device=self.config.device,
            engine="serial",
            requests=len(tr) - len(self.rejected),
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
