"""WorkLeft: the compute and memory work a blend replica still has to run, as best known now.

blend paces its compute stream by ``r = compute left / memory left`` (:mod:`.blend_admission`).
Open loop, both are the plan's totals minus the work done. For memory that fails badly: memory work
sits in a few long requests, and an over-estimated one never runs out, so the compute stream stays
throttled long after the memory-heavy requests have finished (trace1 at 40K with sampled video
lengths: 200K steps instead of 56K). So the memory left is closed loop, re-derived from the requests
themselves every :data:`REFRESH_STEPS` steps (O(running)):

* not admitted yet: their planned memory (:meth:`DualScanner.unpopped_work`);
* running, or preempted and waiting to be re-admitted: the decode KV reads they have not done up to
  their estimate ``d_hat``, ``p (d_hat - g) + (d_hat^2 - g^2) / 2`` after ``g`` output tokens (E4's
  sum from ``g`` on). A request that finishes short of its estimate takes the rest with it at
  once. One that outruns it is expected to run as far past it again (``2 g - d_hat`` tokens in
  all, re-derived at every refresh: the longer it has outrun, the longer it is expected to go);
  counting nothing more for it rushed the compute on trace4 at 40K with sampled video lengths,
  whose videos run up to 3.4x their estimate (-1.8 % throughput).

Between refreshes, requests admitted since the last one count with their planned memory, so an
admission never makes work disappear before the next refresh sees it running.

The compute left stays open loop: the plan's total minus the GEMM tokens run. It is spread over
many requests whose errors average out, and an error there only loosens the pace (measured on the
40K presets with exact video lengths: per-request compute left instead moves blend by -0.7 to
+0.5 %, open-loop memory by up to -4 %).

Units: seconds at the GPU's datasheet peaks, the plan's (``tok_s`` per GEMM token, ``kv_s`` per KV
token read). Invariant: the memory left is >= 0.
"""

from __future__ import annotations

from blendsim.sim.simulation.cursors import DualScanner
from blendsim.sim.simulation.engine import Engine

REFRESH_STEPS = 16  # how stale the running requests' part may get: a pace, not an exact ledger


class WorkLeft:
    """The work left of one blend replica (module docstring)."""

    def __init__(self, scanner: DualScanner, tok_s: float, kv_s: float) -> None:
        self.scanner, self.tok_s, self.kv_s = scanner, tok_s, kv_s
        self.comp_total = float(scanner.plan.unit_comp.sum())
        self._refreshed_at = -REFRESH_STEPS
        self._running = 0.0
        self._unpopped_then = 0.0  # the unpopped memory at the refresh

    def left(self, engine: Engine) -> tuple[float, float]:
        """``(compute, memory)`` still to run, in planning seconds."""
        if engine.step_index - self._refreshed_at >= REFRESH_STEPS:
            self._running = self._running_reads(engine) * self.kv_s
            self._unpopped_then = self.scanner.unpopped_work()[1]
            self._refreshed_at = engine.step_index
        # what was popped since the refresh still counts at its planned memory, in the unpopped part
        return self.comp_total - engine.stats.gemm_done * self.tok_s, self._running + self._unpopped_then

    def steps_left(self, engine: Engine, capacity_tokens: float) -> float:
        """The fewest steps the memory work left still needs (>= 1): its KV reads at a full cache
        (a step reads at most ``capacity_tokens``), or the latest estimated end of a right-side
        resident (each output token is a step), whichever is longer."""
        reads = self.left(engine)[1] / self.kv_s
        steps = reads / capacity_tokens
        ends = engine.sides.right_ends
        if ends and ends[-1] - engine.step_index > steps:
            steps = float(ends[-1] - engine.step_index)
        return steps if steps > 1.0 else 1.0

    @staticmethod
    def _running_reads(engine: Engine) -> float:
        """KV reads the replica's admitted requests have not done of their estimates."""
        r, t = engine.requests, engine.step_index - 1
        p, d_hat = r.p, r.d_hat
        decodes = engine.decodes
        reads = 0.0
        for pos, g in decodes.generated_by(t):
            d = d_hat[pos]
            if d <= g:  # past its estimate: expect it to run as far past it again
                d = 2 * g - d
            if d > g:
                reads += p[pos] * (d - g) + (d * d - g * g) / 2
        for pos in [pos for pos, _ in engine.prefill.entries()] + list(engine.preempted):
            g, d = r.gen[pos], d_hat[pos]
            if d > g:
                reads += p[pos] * (d - g) + (d * d - g * g) / 2
        return reads
