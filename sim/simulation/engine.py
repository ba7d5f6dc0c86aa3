"""One replica: continuous batching with chunked prefill over paged KV with a radix prefix cache.

Life of a request (vLLM's semantics): admission allocates the KV of its prompt segments that miss
the cache (hits are shared by reference count; :mod:`.blocks`) and queues its prefill
(:mod:`.prefill`); the prefill runs in chunks, in admission order, inside the step's token budget
(less its decodes, and within the policy's prefill cap); the step that finishes the prompt samples
the first output token; each later step decodes one token (:mod:`.decode`) until ``output_len``
tokens exist. Its own KV is freed when it finishes; its prompt segments stay cached, unreferenced,
until LRU eviction needs the room. Each step's time comes from the step model for the step's
aggregate shape, and the step is recorded (:mod:`.record`).

When the next step's KV does not fit, unreferenced cached prefixes are evicted LRU, then the newest
running request is preempted (counted) and queued for re-admission, first; it recomputes its prompt
and the tokens it had generated when re-admitted (vLLM's recompute preemption).

The parts: :class:`~.requests.RequestTable` (what each request is and where it is),
:class:`~.blocks.BlockAllocator`, :class:`~.prefill.PrefillQueue`, :class:`~.decode.DecodeSet`,
:class:`~.sides.SideLedger` (blend's partitions), :class:`~.stats.EngineStats` and
:class:`~.record.StepRecorder`. A step costs O(admissions + completions + evictions +
preemptions), never O(running). Admission policies (:mod:`.admission`) drive it through
:meth:`Engine.try_admit`, :meth:`Engine.readmit_preempted` and :meth:`Engine.cap_prefill`.

Invariants (tests): blocks in use never exceed the capacity; each request finishes once, with
exactly its output length.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from blendsim.profiler.cost import BatchShape, StepTime
from blendsim.sim.simulation.blocks import BlockAllocator
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.decode import DecodeSet
from blendsim.sim.simulation.prefill import PrefillQueue
from blendsim.sim.simulation.record import COLOCATED, StepRecorder
from blendsim.sim.simulation.requests import RequestTable
from blendsim.sim.simulation.sides import LEFT, SideLedger
from blendsim.sim.simulation.stats import EngineStats
from blendsim.traces.trace import Trace


class StepCost(Protocol):
    def step_time(self, shape: BatchShape, engine: str) -> StepTime: ...


class Engine:
    """One replica's state and its step function (see the module docstring). A colocated replica;
    the roles of a disaggregated layout (:mod:`.roles`) differ in what follows a prompt's prefill,
    in how an admission is charged and in whether prompts share prefix KV (the class attributes)."""

    role = COLOCATED  # the step record's role code
    charges_output = True  # an admission is charged its share of the estimated output's KV
    shares_prefixes = True  # prompts share KV through the radix prefix cache

    def __init__(
        self, trace: Trace, est_output: np.ndarray, cost: StepCost, config: EngineConfig, capacity_blocks: int
    ) -> None:
        n = len(trace)
        self.cfg, self.cost = config, cost
        self.bs = config.block_size
        self._step_time = cost.step_time  # bound once: the step's hot path
        self._composition = config.engine
        self._budget = config.token_budget
        self._max_running = config.max_running
        self.requests = RequestTable(trace, est_output, private_prompts=not self.shares_prefixes)
        self.blocks = BlockAllocator(capacity_blocks, config.block_size, n)
        self.prefill = PrefillQueue()
        self.decodes = DecodeSet(n, config.block_size)
        self.sides = SideLedger(n)
        self.stats = EngineStats()
        self.record = StepRecorder(self.role)
        self.preempted: deque[int] = deque()  # re-admitted first, in this order
        self.step_index = 1  # the step about to run, numbered from 1
        self.now = 0.0
        self.n_running = 0  # requests holding KV: prefilling or decoding
        self._cap: int | None = None  # prefill tokens the next step may run (None: the budget)
        self._reserve = config.reserve_fraction if self.charges_output else 0.0
        blocks_of = -(-np.asarray(trace.prompt_len, dtype=np.int64) // self.bs)
        charged = np.floor(self._reserve * np.asarray(self.requests.d_hat, dtype=np.float64)).astype(np.int64)
        self._footprint: list[int] = (blocks_of + -(-charged // self.bs)).tolist()

    # ------------------------------------------------------------------ what policies read
    @property
    def prefill_room(self) -> int:
        """Prefill tokens the next step can take."""
        return self._budget - self.decodes.n

    @property
    def idle(self) -> bool:
        return self.n_running == 0 and not self.preempted

    @property
    def has_work(self) -> bool:
        """A step would compute something: a prompt chunk or a decode."""
        return self.decodes.n > 0 or len(self.prefill) > 0

    @property
    def admission_open(self) -> bool:
        """The running cap and the next step's prefill room let some request in (its KV aside)."""
        return self.n_running < self._max_running and self.prefill.pending < self.prefill_room

    def cached_prefix_tokens(self, pos: int) -> int:
        """Prompt tokens of ``pos`` whose segments the radix cache holds now (token-granular)."""
        segs, lens = self.requests.segments(pos)
        return self.blocks.cache.lookup(segs, lens)[1]

    def footprint(self, pos: int) -> int:
        """Blocks an admission of ``pos`` would charge if nothing were cached (planning use): its
        prompt's and the admission rule's share of its estimated output, in whole blocks."""
        return self._footprint[pos]

    # ------------------------------------------------------------------ what policies do
    def cap_prefill(self, tokens: int | None) -> None:
        """Cap the next step's prefill tokens (None: the step's whole token budget)."""
        self._cap = tokens

    def readmit_preempted(self) -> bool:
        """Re-admit preempted requests, oldest preemption last; True when none is left waiting."""
        waiting, side = self.preempted, self.sides.side
        while waiting and self.try_admit(waiting[0], side[waiting[0]]) is not None:
            waiting.popleft()
        return not waiting

    def try_admit(self, pos: int, side: int = 0) -> int | None:
        """Admit ``pos`` on ``side`` if the running cap, the step's prefill room and KV allow it;
        returns the prefill tokens it queued (cache misses), None when it was not admitted."""
        prefill = self.prefill
        room = self._budget - self.decodes.n
        if self.n_running >= self._max_running or prefill.pending >= room:
            return None
        r = self.requests
        p, g = r.p[pos], r.gen[pos]
        target, charged_out = self._charged_output(pos, g)
        segs, lens = r.segments(pos)
        got = self.blocks.reserve(pos, segs, lens, p, g, charged_out, self.now)
        if got is None:
            return None
        hit_tokens, new_blocks, charge = got
        tokens = p - hit_tokens + g
        # estimated end: after the queued prefill (whole steps of the current room), then one token
        # per step up to the estimate
        delay = (prefill.pending + tokens) // (room if room > 1 else 1)
        end = r.est_end[pos] = self.step_index + delay + target - g
        final = r.est_final[pos] = p + target
        self.sides.join(pos, side, new_blocks + charge, end, final)
        self.n_running += 1
        if r.admitted(pos):
            self.stats.saved_tokens += hit_tokens
            self.record.admission(pos, side, self.step_index, self.now, hit_tokens)
        else:
            self.stats.recomputed_tokens += tokens
        prefill.push(pos, tokens, hit_tokens)
        return tokens

    def _charged_output(self, pos: int, g: int) -> tuple[int, int]:
        """``(target, charged)`` for an admission of ``pos`` with ``g`` output tokens generated: the
        output length it is expected to reach, ``max(d_hat, g + 1)``, and the output tokens whose KV
        its admission is charged (the admission rule's share of what is left)."""
        d_hat = self.requests.d_hat[pos]
        target = d_hat if d_hat > g else g + 1
        return target, g + int(self._reserve * (target - g))

    # ------------------------------------------------------------------ one step
    def step(self) -> float:
        """Run one engine step; returns its duration in seconds."""
        t = self.step_index
        decodes, stats, blocks = self.decodes, self.stats, self.blocks
        grow = decodes.grow_class[t % self.bs]
        if blocks.cache.used_blocks + blocks.private_blocks + grow > blocks.capacity:
            self._make_room(t)
            grow = decodes.grow_class[t % self.bs]  # a preemption changes the growth
        n_dec, kv_read = decodes.n, decodes.kv_read
        room = self._budget - n_dec
        cap = self._cap
        if cap is not None and cap < room:
            room = cap
        # every prefill has >= 1 token (the last prompt token is never a hit)
        tokens, pairs, seqs, done = self.prefill.take(room, t, self.record.chunk_log)
        st = self._step_time(BatchShape(tokens, pairs, n_dec, kv_read, seqs), self._composition)
        self.now += st.total_s
        blocks.private_blocks += grow
        stats.gemm_done += tokens + n_dec
        stats.kv_done += kv_read
        stats.pairs_done += pairs
        stats.chunks_done += seqs
        self.record.step(
            self.now,
            (tokens, pairs, seqs),
            (n_dec, kv_read),
            self.n_running,
            blocks.cache.used_blocks + blocks.private_blocks,
            st,
            self._cap,
        )
        self._finish_decodes(t)
        if self.sides.has_outruns:
            for pos in self.sides.due_outruns(t, decodes.version):
                r = self.requests
                self.sides.move(pos, decodes.kv_at(pos, t + 1), r.est_end[pos], r.est_final[pos], t)
                stats.outruns += 1
        for pos in done:
            self._prefill_done(pos, t)
        self.step_index = t + 1
        return st.total_s

    def _finish_decodes(self, t: int) -> None:
        r, sides = self.requests, self.sides
        for pos, kv, out in self.decodes.finish_due(t, r.p):
            sides.decode_ended(pos, kv)
            r.gen[pos] = r.d[pos]
            self._release(pos, self.blocks.own_blocks(r.p[pos], out))
        self.decodes.advance()
        sides.advance()

    def _prefill_done(self, pos: int, t: int) -> None:
        r = self.requests
        self.stats.prefill_completions += 1
        g = r.gen[pos] + 1
        r.gen[pos] = g
        if g >= r.d[pos]:
            self._release(pos, self.blocks.own_blocks(r.p[pos], g - 1))
            return
        self._prompt_done(pos, t)

    def _prompt_done(self, pos: int, t: int) -> None:
        """``pos``'s prompt was computed by step ``t`` and it has output left: it decodes here."""
        self._start_decode(pos, t)

    def _start_decode(self, pos: int, t: int) -> None:
        """``pos`` (its prompt's KV and ``gen - 1`` output tokens' in place) decodes from step
        ``t + 1`` on; its estimated end is now known exactly (the prefill may have waited)."""
        r = self.requests
        g = r.gen[pos]
        left = r.d_hat[pos] - g
        end = r.est_end[pos] = t + left if left > 0 else t
        kv = self.decodes.start(pos, t, r.p[pos], g - 1, t + r.d[pos] - g)
        self.sides.decode_started(pos, kv, end)
        if self.sides.side[pos] == LEFT and r.d[pos] > r.d_hat[pos]:
            # its token count passes the estimate after this many decode steps (paper §5)
            self.sides.watch_outrun(t + left + 1 if left >= 0 else t, pos, self.decodes.version[pos])

    def _release(self, pos: int, private: int) -> None:
        """A request finished: free its own KV (``private`` blocks), unreference its prompt."""
        self.requests.finish(pos)
        self.stats.finished += 1
        self._leave(pos, private, self.now)

    def _leave(self, pos: int, private: int, now: float) -> None:
        """``pos`` stops running here at ``now``: its ``private`` blocks go, its prompt stays cached."""
        self.n_running -= 1
        self.sides.leave(pos)
        self.blocks.free(pos, self.requests.segment_ids(pos), private, now)

    # ------------------------------------------------------------------ memory pressure
    def _make_room(self, t: int) -> None:
        """Make the KV the step writes fit: evict cached prefixes, then preempt the newest."""
        blocks = self.blocks
        while True:
            need = blocks.used_blocks + self.decodes.growth(t) - blocks.capacity
            if blocks.make_room(need) <= 0:
                return
            self._preempt_newest(t)

    def _preempt_newest(self, t: int) -> None:
        r = self.requests
        self.stats.preemptions += 1
        self.n_running -= 1
        if len(self.prefill):  # the prefill queue's tail is the newest running request
            pos, remaining = self.prefill.pop_newest()
            # its re-admission queues the whole prefill again, but this remainder was never
            # computed: only the part already done is redone work
            self.stats.recomputed_tokens -= remaining
            self.sides.leave(pos)
            self.blocks.discard(
                pos, r.segment_ids(pos), self.blocks.own_blocks(r.p[pos], r.gen[pos]), self.now
            )
        else:
            pos, steps, kv = self.decodes.pop_newest(t, r.p)
            self.sides.decode_ended(pos, kv)
            r.gen[pos] += steps
            self.sides.leave(pos)
            own = self.blocks.own_blocks(r.p[pos], self.decodes.so0[pos] + steps)
            self.blocks.free(pos, r.segment_ids(pos), own, self.now)
        self.preempted.appendleft(pos)
