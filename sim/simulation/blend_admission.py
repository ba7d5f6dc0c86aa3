"""``blend`` admission: two scanner streams blended by the dual-scan budgets (paper §5.3, E7, E8).

Every step, before the engine runs it:

1. preempted requests are re-admitted first, on the side they came from;
2. the dual scan for the units under the cursors (recomputed whenever a cursor reaches another unit)
   splits the KV memory into logical partitions ``M_L, M_R`` and gives per-step prefill budgets
   ``C_L, C_R`` (tokens). A stream's budget is a credit: it grows by ``C`` per step, never banks
   more than one step's worth, and an admission may overdraw it (a video prompt of 121 tokens under
   ``C_R = 0.4`` is admitted once every ~300 steps: the paper's staggered steady state);
3. the right (memory-heavy) stream admits while its credit is positive and its partition has room:
   a side's use is the larger of its admission charges (``new prompt blocks + charge`` per request,
   E8's ``p + d/2`` by default) and the KV its requests actually hold ("current used KV", which
   outgrows the charges when lifetimes line up); an empty partition always takes one request.
   Only requests whose output length the planner *knows* (sampled, of an exact kind, the oracle's)
   are staggered by the credit: staggering spaces lifetimes by ``d``, which an estimate gets wrong,
   so a request with an estimated length is admitted as soon as the partition has room and the
   partition (KV actually held) does the pacing;
4. the left (compute-heavy) stream does the same with ``C_L`` and ``M_L`` (the paper), or, with
   ``EngineConfig.blend_pacing``, is *paced* (design.md "The critical path"): its budget is the GEMM
   tokens that keep this step's compute at ``r`` times the decode-attention time of the KV actually
   resident, ``r = remaining compute / remaining memory work`` of the replica's share (closed loop:
   what its requests have not run of their estimates, :mod:`.work_left`), never below the
   profile's ridge (GEMM steps below it cost the same);
   its memory is all that the right stream does not hold or still need. Once the right cursor has
   no memory-heavy unit left, the paced left stream drains everything (the cursors meet there).

A left request that outruns its estimated output is re-accounted from ``M_L`` to ``M_R`` (paper §5;
the engine moves it when its token count passes the estimate).

5. **On the serial engine** (``EngineConfig.engine == "serial"``) a step costs its compute *plus*
   its memory, so there is no overlap to pace for: the memory work costs the same whenever it runs,
   and what an order can still save is steps (each pays the GEMMs' fixed cost and the overhead).
   So the pace spreads the GEMM tokens left over the fewest steps the memory work left needs
   (:meth:`.WorkLeft.steps_left`: its KV reads at a full cache, or the latest right resident's
   estimated end) instead of matching each step's resident KV; the right credit is spent per
   request (``blend_request_credit``'s rule: by Little's law the right side then holds ``M_R`` on
   average, where unit-mean spacing admits cohorts that hold half of it), and a right request that
   would end after those steps if it waited for credit is admitted at once on overdrawn credit, so
   the spacing never lengthens the critical path.
"""

from __future__ import annotations

import numpy as np

from blendsim.profiler.cost import token_comp_time
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.scanner import ScanBudget
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.cursors import DualScanner
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.projected_peak import RightProjection
from blendsim.sim.simulation.sides import LEFT, RIGHT
from blendsim.sim.simulation.work_left import WorkLeft

# planning density below which a unit is memory-bound on its own: its decode attention outlasts its
# GEMMs at the datasheet peaks. Pacing hides such work behind the compute stream; a share with no
# such unit has nothing to hide (its "memory-heavy" units are merely less compute-heavy than the
# mean), and pacing against its resident KV, which the paced stream itself keeps small, would only
# keep every step small: its compute stream runs unpaced, full steps as DFS.
MEMORY_BOUND = 1.0


class BlendAdmission:
    """The dual-scanner admission of one replica's two-sided plan (module docstring)."""

    def __init__(
        self,
        plan: Plan,
        model: ModelSpec,
        hw: HardwareSpec,
        config: EngineConfig,
        capacity_blocks: int,
        ridge_tokens: float = 0.0,
    ) -> None:
        self.scanner = DualScanner(plan, refresh_target=config.blend_refresh_target)
        self.known: list[bool] = plan.known_len.tolist()
        self.pacing = config.blend_pacing
        self.serial = config.engine == "serial"  # no overlap to pace for (module docstring, 5.)
        self.memory_bound = bool(np.any(plan.unit_density < MEMORY_BOUND))
        self.chunk_pacing = config.blend_pacing and config.blend_chunk_pacing
        self.request_credit = config.blend_request_credit or self.serial
        self.kv_bytes = float(model.kv_bytes_per_token)
        self.block_bytes = self.kv_bytes * config.block_size
        self.memory = capacity_blocks * self.block_bytes
        self.capacity_blocks = capacity_blocks
        self.capacity_tokens = float(capacity_blocks * config.block_size)
        self.tok_s = token_comp_time(model, hw)  # planning units: seconds at the datasheet peaks
        self.kv_s = self.kv_bytes / hw.mem_bandwidth
        self.work = WorkLeft(self.scanner, self.tok_s, self.kv_s)
        self.ridge = ridge_tokens
        self.credit = [0.0, 0.0, 0.0]
        self._key: tuple[int, int] | None = None
        self._budget: ScanBudget | None = None
        self.budget_changes = 0
        self.projected = config.right_admission == "projected_peak"
        self._projection: RightProjection | None = None
        self._projection_key = -1

    @property
    def exhausted(self) -> bool:
        return self.scanner.exhausted

    def budget(self) -> ScanBudget | None:
        """The dual scan of the units under the cursors, recomputed when a cursor changes unit."""
        key = self.scanner.units
        if key is None:
            return None
        if key != self._key:
            self._key = key
            self._budget = self.scanner.budgets(self.memory, self.kv_bytes)
            self.budget_changes += 1
        return self._budget

    # ------------------------------------------------------------------ one step
    def admit(self, engine: Engine) -> None:
        # the paced target depends on work done and resident KV, which admissions do not change
        target = self._paced_target(engine) if self.pacing else None
        s = self.scanner
        if self.chunk_pacing and target is not None and not s.exhausted:
            cap = int(target) - engine.decodes.n
            engine.cap_prefill(cap if cap > 0 else 0)  # prompts chunked at the pace
        else:
            engine.cap_prefill(None)
        if not engine.readmit_preempted() or s.exhausted:
            return
        b = self.budget()
        assert b is not None
        right_tokens = 0
        if not self.pacing or s.right_is_memory_heavy():
            per_step = b.m_right / self.kv_bytes if self.request_credit else b.c_right
            head = s.peek_right()
            estimated_head = head is not None and not self.known[head]
            if self._refill(engine, RIGHT, per_step) > 0 or estimated_head or self._overdue(engine, head):
                right_tokens = self._admit_right(engine, b.m_right / self.block_bytes)
                if right_tokens:  # the right cursor moved: the units under the cursors may have
                    b = self.budget()
                    if b is None:
                        return
        if not self.pacing:
            if self._refill(engine, LEFT, b.c_left) > 0:
                self._admit_left(engine, b.m_left / self.block_bytes)
        else:
            if target is None:
                left_budget = float(engine.cfg.token_budget)  # no memory work left to pace against
            else:
                left_budget = target - engine.decodes.n - right_tokens
                if left_budget < 0.0:
                    left_budget = 0.0
            if self._refill(engine, LEFT, left_budget) > 0:  # the partition matters only with credit
                self._admit_left(engine, self._left_partition(engine, b))

    def _paced_target(self, engine: Engine) -> float | None:
        """GEMM tokens of this step that keep compute at pace with the resident memory: ``r`` x
        the decode-attention time, ``r`` = remaining compute / remaining memory work, never below
        the ridge; None when no memory work is left to pace against, or none of the share's units
        is memory-bound (:data:`MEMORY_BOUND`)."""
        if not self.memory_bound:
            return None
        comp_left, mem_left = self.work.left(engine)
        if mem_left <= 0 or comp_left <= 0:
            return None
        if self.serial:  # the GEMM tokens left spread over the fewest steps the memory work needs
            paced = comp_left / self.tok_s / self.work.steps_left(engine, self.capacity_tokens)
        else:
            paced = comp_left / mem_left * engine.decodes.kv_read * self.kv_s / self.tok_s
        return self.ridge if self.ridge > paced else paced

    def _overdue(self, engine: Engine, pos: int | None) -> bool:
        """Serial engine: right request ``pos`` would, if it waited for credit, end after the
        steps the work left needs (:meth:`WorkLeft.steps_left`), so waiting would lengthen the run;
        it is admitted on credit it overdraws."""
        if not self.serial or pos is None:
            return False
        return bool(engine.requests.d_hat[pos] > self.work.steps_left(engine, self.capacity_tokens))

    def _left_partition(self, engine: Engine, b: ScanBudget) -> float:
        """The paced left stream's blocks: all that the right side holds, will grow to (projected)
        or is still owed (its partition, while memory-heavy work is left) leaves."""
        bs = engine.bs
        reserved = float(engine.sides.blocks(RIGHT, bs))
        if self.projected and engine.sides.members[RIGHT]:  # what the right residents will grow to
            now = engine.step_index
            peak = self._right_projection(engine).peak(now, engine.sides.overdue_tokens(now))
            reserved = max(reserved, peak / bs)
        if self.scanner.right_is_memory_heavy():
            reserved = max(reserved, b.m_right / self.block_bytes)
        return self.capacity_blocks - reserved

    def _right_projection(self, engine: Engine) -> RightProjection:
        """The right residents' projection, rebuilt only when their sorted lists changed (the
        overdue members are a sum the queries add)."""
        sides = engine.sides
        if self._projection is None or self._projection_key != sides.schedule_changes:
            self._projection = RightProjection(sides.right_ends, sides.right_finals, presorted=True)
            self._projection_key = sides.schedule_changes
        return self._projection

    def _refill(self, engine: Engine, side: int, per_step: float) -> float:
        """A step's credit for one stream: it grows by ``per_step`` and never banks more than one
        step's worth (an idle engine gets a full step's). Returns the credit."""
        credit = self.credit[side] + per_step
        if credit > per_step:
            credit = per_step
        if engine.n_running == 0 and per_step > 0:
            credit = per_step  # an idle engine has nothing to wait for
        self.credit[side] = credit
        return credit

    # Each stream admits while its credit (:meth:`_refill`) is positive and its logical partition
    # has room (an empty side takes any request) and returns the prefill tokens admitted (cache
    # misses). What an admission spends from the credit: the paced left budget is in GEMM tokens
    # (cache hits cost none). E8's budget ``C = N p / d`` is in prompt tokens, one request every
    # ``d / N`` steps: the whole prompt is spent, so cached prefixes do not speed admissions past
    # that rate. With ``blend_request_credit`` the right stream's budget is E8 per request: ``M_R``
    # KV token-steps per step, each admission spending its own ``(p + d_hat/2) d_hat`` (Little's
    # law: the side then holds ``M_R`` on average, and a long request is followed by a gap as long
    # as its own KV-time needs, not the unit mean's).

    def _admit_left(self, engine: Engine, partition_blocks: float) -> int:
        if partition_blocks <= 0:
            return 0
        s, sides, r, bs = self.scanner, engine.sides, engine.requests, engine.bs
        credit = self.credit
        admitted = 0
        while credit[LEFT] > 0:
            pos = s.peek_left()
            if pos is None:
                break
            if sides.members[LEFT]:
                load = sides.blocks(LEFT, bs)
                if load and load + engine.footprint(pos) > partition_blocks:
                    break
            tokens = engine.try_admit(pos, LEFT)
            if tokens is None:
                break
            s.pop_left()
            credit[LEFT] -= tokens if self.pacing else r.p[pos]
            admitted += tokens
        return admitted

    def _admit_right(self, engine: Engine, partition_blocks: float) -> int:
        if partition_blocks <= 0:
            return 0
        s, sides, r, bs = self.scanner, engine.sides, engine.requests, engine.bs
        credit = self.credit
        admitted = 0
        known = self.known
        while True:
            pos = s.peek_right()
            if pos is None or (credit[RIGHT] <= 0 and known[pos] and not self._overdue(engine, pos)):
                break
            if sides.members[RIGHT]:
                if self.projected:
                    projection, now = self._right_projection(engine), engine.step_index
                    overdue = sides.overdue_tokens(now)
                    if projection.peak_with(now, r.p[pos], r.d_hat[pos], overdue) > partition_blocks * bs:
                        break
                else:
                    load = sides.blocks(RIGHT, bs)
                    if load and load + engine.footprint(pos) > partition_blocks:
                        break
            tokens = engine.try_admit(pos, RIGHT)
            if tokens is None:
                break
            s.pop_right()
            p = r.p[pos]
            if known[pos]:  # an estimated length is not staggered (module docstring, step 3)
                if self.request_credit:
                    d = r.d_hat[pos]
                    credit[RIGHT] -= (p + d / 2) * d
                else:
                    credit[RIGHT] -= p
            admitted += tokens
            if self.pacing and not s.right_is_memory_heavy():
                break
        return admitted
