"""One replica: continuous batching with chunked prefill, paged KV with a radix prefix cache.

Life of a request (vLLM's semantics): admission allocates the KV of its prompt segments that miss
the cache (hits are shared by reference count) and queues its prefill; the prefill runs in chunks,
in admission order, inside the per-step token budget; the step that finishes the prompt samples the
first output token; each later step decodes one token until ``output_len`` tokens exist. Its
own KV (below) is freed when it finishes; its prompt segments stay cached, unreferenced,
until LRU eviction needs the room.

KV is paged as vLLM lays it out (block ``b``): a request holds ``ceil((p + g) / b)`` blocks for
its prompt and the ``g`` output tokens whose KV exists; the ``p // b`` full prompt blocks are the
cache's, shared (:mod:`.kvcache`), the rest is its own (*private*: the partial last prompt block
and the output), freed when it leaves. Prefix hits are block-granular (vLLM's): a request skips the
longest cached prefix of its prompt rounded *down* to a multiple of ``b``, and never its last
prompt token (one must be computed to sample from): ``min(cached, p - 1) // b * b`` tokens. The
cached tokens past the last whole block are recomputed into the block that follows, which is the
next segment's or the private partial block, so nothing is held twice, except when the whole
prompt is cached and ends on a block boundary: its last block is then recomputed into one more
private block (vLLM computes a copy too).

A step costs O(admissions + completions + evictions + preemptions), never O(running):
* decodes end at a step known when they start, so completions sit in a heap;
* the decode KV read ``decode_kv_tokens`` is a running sum that grows by the number of decodes;
* private KV grows by one block for the decodes that write a token at a block boundary (position
  ``p + g``); requests are bucketed by the step residue at which that happens, so the growth of a
  step is one bucket count.

When the next step's KV does not fit, unreferenced cached prefixes are evicted LRU, then the newest
running request is preempted (counted) and re-queued at the front; it recomputes its prompt and the
tokens it had generated when re-admitted (vLLM's recompute preemption).

Invariants (tests): blocks in use never exceed ``capacity_blocks``; each request finishes once,
with exactly its output length.
"""

from __future__ import annotations

import heapq
from array import array
from collections import deque
from typing import Protocol

import numpy as np

from blendsim.profiler.cost import BatchShape, StepTime
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.kvcache import RadixCache
from blendsim.traces.trace import Trace


class StepCost(Protocol):
    def step_time(self, shape: BatchShape, engine: str) -> StepTime: ...


SIDES = ("fcfs", "left", "right")  # side codes: 0 baseline, 1 blend left, 2 blend right


class Engine:
    """One replica's state and its step function (see the module docstring)."""

    def __init__(
        self, trace: Trace, est_output: np.ndarray, cost: StepCost, config: EngineConfig, capacity_blocks: int
    ) -> None:
        n = len(trace)
        self.trace, self.cost, self.cfg = trace, cost, config
        self.bs = config.block_size
        self.capacity = capacity_blocks
        self.cache = RadixCache(config.block_size)
        self.p = trace.prompt_len.tolist()
        self.d = trace.output_len.tolist()
        self.d_hat = np.maximum(np.asarray(est_output, dtype=np.int64), 1).tolist()
        self._off = trace.seg_offsets.tolist()
        # per request (by position)
        self.gen = [0] * n  # output tokens sampled so far
        self.hit_segs = [0] * n  # leading segments that were cache hits at the current admission
        self.dup_blocks = [0] * n  # 1: its wholly cached, block-aligned prompt's last block, recomputed
        self.charge = [0] * n  # KV blocks charged by the admission rule
        self.side = [0] * n
        self.side_charge = [0] * n  # blocks charged to its side: new prompt blocks + charge
        self.seq = [0] * n  # admission sequence number (newest = largest)
        self.version = [0] * n  # bumps when a request leaves decode (lazy heap deletion)
        self.t0 = [0] * n  # step that finished its prefill
        self.kv0 = [0] * n  # KV tokens it held when it entered decode
        self.so0 = [0] * n  # private (output) tokens it held when it entered decode
        self.finish_step = [0] * n
        self.priv0 = [0] * n  # private blocks it held when it entered decode
        self.finished_len = [-1] * n
        self.est_end = [0] * n  # step its estimated output ends, set at admission (projected peak)
        self.est_final = [0] * n  # KV tokens it holds then: prompt + estimated output
        # aggregate state
        self.step_index = 1
        self.now = 0.0
        self.private_blocks = 0  # own KV of running requests (partial prompt block, output, duplicates)
        self.charge_total = 0  # sum of charges of running requests
        self.side_load = [0, 0, 0]  # blocks charged per side (new prompt blocks + charge)
        self.n_running = 0
        self.n_dec = 0
        self.kv_read = 0  # decode KV tokens the next step reads
        self.side_dec = [0, 0, 0]  # decoding requests per side
        self.side_kv = [0, 0, 0]  # their KV tokens (what they read next step): actual per-side use
        self.side_members: list[set[int]] = [set(), set(), set()]  # running requests per side
        self.side_changes = [0, 0, 0]  # bumps whenever a side's members change
        self.grow_class = [0] * self.bs
        self.finish_heap: list[tuple[int, int, int]] = []
        self.newest_dec: list[tuple[int, int, int]] = []  # (-seq, pos, version)
        self.prefill: deque[list[int]] = deque()  # [pos, remaining tokens, tokens before the chunk]
        self.prefill_pending = 0  # tokens queued for prefill
        self.last_admit_tokens = 0  # prefill tokens (cache misses) of the latest admission
        self.prefill_cap: int | None = None  # prefill tokens the next step may run (None: the budget)
        self.requeue: deque[int] = deque()  # preempted requests, re-admitted first
        self._seq = 0
        # statistics
        self.saved_tokens = 0  # prompt tokens skipped by cache hits at first admission
        self.recomputed_tokens = 0  # prefill work redone after preemption (net of never-computed remainders)
        self.preemptions = 0
        self.gemm_done = 0  # GEMM tokens computed so far (prefill + decode)
        self.kv_done = 0  # decode KV tokens read so far
        self.pairs_done = 0.0  # prefill attention query-key pairs computed so far
        self.chunks_done = 0  # prefill chunks run so far (each samples logits: the LM head's rows)
        self.outrun_heap: list[tuple[int, int, int]] = []  # (step, pos, version): left -> right
        self.outruns = 0  # blend left requests re-accounted to the right partition
        self.prefill_completions = 0  # prefills that sampled a token (first ones and recomputes)
        self.finished = 0
        self.admitted_first: list[int] = []  # positions, in first-admission order
        self.admitted_side = array("b")
        self.admitted_step = array("q")  # the step it could first be scheduled in (1-based)
        self.admitted_time = array("d")  # simulated time of that admission (the step's start)
        self.admitted_cached = array("q")  # prompt tokens served from the cache then
        self.series = {
            k: array("d")
            for k in (
                "time",
                "prefill_tokens",
                "decode_tokens",
                "running",
                "kv_used_blocks",
                "compute_s",
                "memory_s",
                "step_s",
                "prefill_cap",
            )
        }

    # ------------------------------------------------------------------ helpers
    def segments(self, pos: int) -> tuple[list[int], list[int]]:
        a, b = self._off[pos], self._off[pos + 1]
        return self.trace.seg_ids[a:b].tolist(), self.trace.seg_lens[a:b].tolist()

    def blocks(self, tokens: int) -> int:
        return -(-tokens // self.bs)

    def own_blocks(self, pos: int, out: int) -> int:
        """Private blocks of ``pos`` holding KV of ``out`` output tokens: its blocks past the
        prompt's full ones (the partial prompt block and the output)."""
        p = self.p[pos]
        return -(-(p + out) // self.bs) - p // self.bs

    @property
    def used_blocks(self) -> int:
        return self.cache.used_blocks + self.private_blocks

    @property
    def committed_blocks(self) -> int:
        """KV the admission rule counts as taken: pinned prompt KV plus every running charge."""
        return self.cache.used_blocks - self.cache.evictable_blocks + self.charge_total

    @property
    def prefill_room(self) -> int:
        """Prefill tokens the next step can take."""
        return self.cfg.token_budget - self.n_dec

    @property
    def idle(self) -> bool:
        return self.n_running == 0 and not self.requeue

    def side_blocks(self, side: int) -> int:
        """KV blocks a side holds or is charged for: the larger of its admission charges and the
        actual KV of its decoding requests (which outgrows the charges under ``expected``)."""
        return max(self.side_load[side], self.side_kv[side] // self.bs)

    def footprint(self, pos: int) -> int:
        """Blocks an admission of ``pos`` would charge if nothing were cached (planning use)."""
        return self.blocks(self.p[pos]) + self.blocks(int(self.cfg.reserve_fraction * self.d_hat[pos]))

    # ------------------------------------------------------------------ admission
    def try_admit(self, pos: int, side: int = 0) -> bool:
        """Admit ``pos`` if the running cap, the step's prefill room and KV allow it."""
        if self.n_running >= self.cfg.max_running or self.prefill_pending >= self.prefill_room:
            return False
        segs, lens = self.segments(pos)
        hit, cached, new_blocks, pinned = self.cache.lookup(segs, lens)
        hit_tokens = min(cached, self.p[pos] - 1) // self.bs * self.bs  # whole blocks, not the last token
        dup = cached // self.bs - hit_tokens // self.bs  # 1: a cached block recomputed (module docstring)
        g = self.gen[pos]
        target = max(self.d_hat[pos], g + 1)
        charge = self.own_blocks(pos, g + int(self.cfg.reserve_fraction * (target - g))) + dup
        if self.committed_blocks + new_blocks + charge > self.capacity:
            return False
        own = new_blocks + self.own_blocks(pos, g) + dup  # taken now: missing segments, own blocks
        free = self.capacity - self.used_blocks
        if own > free + self.cache.evictable_blocks - pinned:
            return False
        if own > free:
            self.cache.evict(own - free)
        self.cache.acquire(segs, lens, self.now)
        self.private_blocks += self.own_blocks(pos, g) + dup
        self.hit_segs[pos] = hit
        self.dup_blocks[pos] = dup
        self.charge[pos] = charge
        self.charge_total += charge
        self.side[pos] = side
        self.side_charge[pos] = new_blocks + charge
        self.side_load[side] += new_blocks + charge
        self.side_members[side].add(pos)
        self.side_changes[side] += 1
        # estimated end: after the queued prefill (whole steps of the current room), then one
        # token per step up to the estimate
        delay = (self.prefill_pending + self.p[pos] - hit_tokens + g) // max(self.prefill_room, 1)
        self.est_end[pos] = self.step_index + delay + target - g
        self.est_final[pos] = self.p[pos] + target
        first = self.seq[pos] == 0
        self._seq += 1
        self.seq[pos] = self._seq
        self.n_running += 1
        tokens = self.p[pos] - hit_tokens + g
        if first:
            self.saved_tokens += hit_tokens
            self.admitted_first.append(pos)
            self.admitted_side.append(side)
            self.admitted_step.append(self.step_index)
            self.admitted_time.append(self.now)
            self.admitted_cached.append(hit_tokens)
        else:
            self.recomputed_tokens += tokens
        self.prefill.append([pos, tokens, hit_tokens])
        self.prefill_pending += tokens
        self.last_admit_tokens = tokens
        return True

    def admit_requeued(self) -> None:
        while self.requeue and self.try_admit(self.requeue[0], self.side[self.requeue[0]]):
            self.requeue.popleft()

    # ------------------------------------------------------------------ one step
    def step(self) -> float:
        """Run one engine step; returns its duration in seconds."""
        t = self.step_index
        self._make_room(t)
        n_dec, kv_read = self.n_dec, self.kv_read
        grow = self.grow_class[t % self.bs]
        room = self.cfg.token_budget - n_dec
        if self.prefill_cap is not None:
            room = min(room, self.prefill_cap)
        p_tokens = p_seqs = 0
        pairs = 0.0
        done: list[int] = []
        queue = self.prefill
        while queue and room > 0:  # every prefill has >= 1 token (the last prompt token is never a hit)
            item = queue[0]
            q = min(room, item[1])
            pairs += q * item[2] + q * (q + 1) / 2
            p_tokens += q
            p_seqs += 1
            room -= q
            item[1] -= q
            item[2] += q
            if item[1]:
                break
            queue.popleft()
            done.append(item[0])
        self.prefill_pending -= p_tokens
        st = self.cost.step_time(BatchShape(p_tokens, pairs, n_dec, kv_read, p_seqs), self.cfg.engine)
        self.now += st.total_s
        self.private_blocks += grow
        self.gemm_done += p_tokens + n_dec
        self.kv_done += kv_read
        self.pairs_done += pairs
        self.chunks_done += p_seqs
        self._record(st, p_tokens, n_dec)
        self._finish_decodes(t)
        if self.outrun_heap:
            self._move_outruns(t)
        for pos in done:
            self._prefill_done(pos, t)
        self.step_index = t + 1
        return st.total_s

    def _record(self, st: StepTime, p_tokens: int, n_dec: int) -> None:
        s = self.series
        s["time"].append(self.now)
        s["prefill_tokens"].append(p_tokens)
        s["decode_tokens"].append(n_dec)
        s["running"].append(self.n_running)
        s["kv_used_blocks"].append(self.used_blocks)
        s["compute_s"].append(st.compute_s)
        s["memory_s"].append(st.memory_s)
        s["step_s"].append(st.total_s)
        s["prefill_cap"].append(-1 if self.prefill_cap is None else self.prefill_cap)

    def _finish_decodes(self, t: int) -> None:
        heap = self.finish_heap
        while heap and heap[0][0] <= t:
            _, pos, ver = heapq.heappop(heap)
            if ver != self.version[pos]:
                continue
            self.version[pos] += 1
            self.n_dec -= 1
            kv = self.kv0[pos] + (t - self.t0[pos])
            self.kv_read -= kv
            self.side_dec[self.side[pos]] -= 1
            self.side_kv[self.side[pos]] -= kv
            self.grow_class[(self.t0[pos] + 1 - self.so0[pos] - self.p[pos]) % self.bs] -= 1
            self.gen[pos] = self.d[pos]
            self._release(pos, self.own_blocks(pos, self.so0[pos] + t - self.t0[pos]))
        self.kv_read += self.n_dec
        for side, n in enumerate(self.side_dec):
            self.side_kv[side] += n

    def _prefill_done(self, pos: int, t: int) -> None:
        self.prefill_completions += 1
        g = self.gen[pos] + 1
        self.gen[pos] = g
        if g >= self.d[pos]:
            self._release(pos, self.own_blocks(pos, g - 1))
            return
        so = g - 1  # output tokens whose KV is held (0 after a first prefill)
        self.t0[pos], self.so0[pos] = t, so
        self.kv0[pos] = self.p[pos] + so
        self.finish_step[pos] = t + self.d[pos] - g
        # its decode started: the estimated end is now known exactly (the prefill may have waited)
        self.est_end[pos] = t + max(self.d_hat[pos] - g, 0)
        self.side_changes[self.side[pos]] += 1
        self.n_dec += 1
        self.kv_read += self.p[pos] + so + 1
        self.side_dec[self.side[pos]] += 1
        self.side_kv[self.side[pos]] += self.p[pos] + so + 1
        self.grow_class[(t + 1 - so - self.p[pos]) % self.bs] += 1  # steps writing KV at a block start
        heapq.heappush(self.finish_heap, (self.finish_step[pos], pos, self.version[pos]))
        heapq.heappush(self.newest_dec, (-self.seq[pos], pos, self.version[pos]))
        if self.side[pos] == 1 and self.d[pos] > self.d_hat[pos]:
            # its token count passes the estimate after this many decode steps (paper §5)
            at = t + max(self.d_hat[pos] - g + 1, 0)
            heapq.heappush(self.outrun_heap, (at, pos, self.version[pos]))

    def _move_outruns(self, t: int) -> None:
        """Left requests that outran their estimate are re-accounted to the right partition."""
        heap = self.outrun_heap
        while heap and heap[0][0] <= t:
            _, pos, ver = heapq.heappop(heap)
            if ver != self.version[pos] or self.side[pos] != 1:
                continue
            self.side_load[1] -= self.side_charge[pos]
            self.side_load[2] += self.side_charge[pos]
            kv = self.kv0[pos] + (t + 1 - self.t0[pos])
            self.side_dec[1] -= 1
            self.side_kv[1] -= kv
            self.side_dec[2] += 1
            self.side_kv[2] += kv
            self.side[pos] = 2
            self.side_members[1].discard(pos)
            self.side_members[2].add(pos)
            self.side_changes[1] += 1
            self.side_changes[2] += 1
            self.outruns += 1

    def _release(self, pos: int, private: int) -> None:
        """A request finished: free its own KV (``private`` blocks), unreference its prompt."""
        self.finished_len[pos] = self.gen[pos]
        self.finished += 1
        self.private_blocks -= private
        self._drop(pos)
        self.cache.release(self.segments(pos)[0], self.now)

    def _drop(self, pos: int) -> None:
        """It stops running: its charges and its duplicate block go (the caller frees the rest)."""
        self.n_running -= 1
        self.private_blocks -= self.dup_blocks[pos]
        self.dup_blocks[pos] = 0
        self.side_members[self.side[pos]].discard(pos)
        self.side_changes[self.side[pos]] += 1
        self.charge_total -= self.charge[pos]
        self.side_load[self.side[pos]] -= self.side_charge[pos]
        self.charge[pos] = self.side_charge[pos] = 0

    # ------------------------------------------------------------------ memory pressure
    def _make_room(self, t: int) -> None:
        """Make the KV the step writes fit: evict cached prefixes, then preempt the newest."""
        while True:
            need = self.used_blocks + self.grow_class[t % self.bs] - self.capacity
            if need <= 0:
                return
            need -= self.cache.evict(need)
            if need <= 0:
                return
            self._preempt_newest(t)

    def _preempt_newest(self, t: int) -> None:
        self.preemptions += 1
        if self.prefill:  # the prefill queue's tail is the newest running request
            pos, remaining, _ = self.prefill.pop()
            self.prefill_pending -= remaining
            # its re-admission queues the whole prefill again, but this remainder was never
            # computed: only the part already done is redone work
            self.recomputed_tokens -= remaining
            segs, _lens = self.segments(pos)
            hit = self.hit_segs[pos]
            self.cache.discard(segs, hit)  # never computed (conservative if partly done)
            if hit:
                self.cache.release(segs[:hit], self.now)
            self.private_blocks -= self.own_blocks(pos, self.gen[pos])
            self._drop(pos)
            self.requeue.appendleft(pos)
            return
        while True:
            _, pos, ver = heapq.heappop(self.newest_dec)
            if ver == self.version[pos]:
                break
        self.version[pos] += 1
        done_steps = t - 1 - self.t0[pos]
        self.n_dec -= 1
        kv = self.kv0[pos] + done_steps + 1
        self.kv_read -= kv
        self.side_dec[self.side[pos]] -= 1
        self.side_kv[self.side[pos]] -= kv
        self.grow_class[(self.t0[pos] + 1 - self.so0[pos] - self.p[pos]) % self.bs] -= 1
        self.gen[pos] += done_steps
        self.private_blocks -= self.own_blocks(pos, self.so0[pos] + done_steps)
        self.cache.release(self.segments(pos)[0], self.now)
        self._drop(pos)
        self.requeue.appendleft(pos)
