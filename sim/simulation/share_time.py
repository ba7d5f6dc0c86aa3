"""A time model of a data-parallel share, and the compute parts that make shares finish together.

A replica's run cannot be shorter than its share's step bound (:mod:`.breakdown`): its work at the
profile's best efficiency plus the fixed cost of the fewest steps it needs, and a share holding a
56K-token video needs 56K steps whatever else it holds. :class:`ShareTimeModel` prices a share so:
its GEMM tokens, decodes and KV reads (from the plan's estimates) in
``max(longest output, GEMM tokens / token budget, KV reads / KV capacity)`` steps. Balancing
compute alone hands the replica with the longest request as much other work as the rest; then it
finishes last (the 40K presets at DP = 2: 882 s against 782 s on trace1). :func:`equal_time_parts`
splits the compute-heavy work instead so the predicted times are equal: the share with the longest
critical path takes less of it.

The model is a bound, not a prediction of blend's own time (blend runs at 0.66-0.76 of the step
bound at 400K on one replica); what carving needs is that the shares' bounds move together with
their times, so equal bounds give equal finishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendsim.profiler.cost import token_comp_time
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile
from blendsim.sim.simulation.breakdown import StepLine, fewest_steps, step_bound_time
from blendsim.sim.simulation.config import EngineConfig

_ITERATIONS = 48  # bisection steps: the parts are exact to 2**-48 of the work


@dataclass(frozen=True)
class ShareWork:
    """A share's planned work: GEMM tokens (prefill after sharing, plus decodes), decodes, decode KV
    reads (tokens) and its longest estimated output. Additive except ``longest`` (a max)."""

    gemm_tokens: float
    decodes: float
    kv_tokens: float
    longest: float

    def plus(self, other: ShareWork, part: float) -> ShareWork:
        """This work with ``part`` of ``other`` added (``other``'s longest counts once any is)."""
        return ShareWork(
            self.gemm_tokens + part * other.gemm_tokens,
            self.decodes + part * other.decodes,
            self.kv_tokens + part * other.kv_tokens,
            max(self.longest, other.longest) if part > 0 else self.longest,
        )


@dataclass(frozen=True)
class ShareTimeModel:
    """The step bound of a share's work on one replica (module docstring). ``tok_s`` and ``kv_s``
    convert the plan's costs (seconds at the datasheet peaks) to GEMM tokens and KV tokens."""

    line: StepLine
    profile: Profile
    engine: str
    token_budget: int
    kv_capacity_tokens: int
    tok_s: float
    kv_s: float

    @classmethod
    def of(
        cls, profile: Profile, model: ModelSpec, config: EngineConfig, capacity_blocks: int
    ) -> ShareTimeModel:
        """The model of one replica of ``profile`` (bound to ``model``) under ``config``."""
        return cls(
            StepLine.of(profile.steps),
            profile,
            config.engine,
            config.token_budget,
            capacity_blocks * config.block_size,
            token_comp_time(model, profile.hardware),
            model.kv_bytes_per_token / profile.hardware.mem_bandwidth,
        )

    def work(self, comp: np.ndarray, mem: np.ndarray, est_output: np.ndarray) -> ShareWork:
        """The work of requests with planned ``comp`` and ``mem`` (seconds) and estimated outputs."""
        return ShareWork(
            float(comp.sum()) / self.tok_s,
            float(np.maximum(est_output - 1, 0).sum()),
            float(mem.sum()) / self.kv_s,
            float(est_output.max()) if len(est_output) else 0.0,
        )

    def time(self, w: ShareWork) -> float:
        """Seconds: the least a replica running ``w`` can take (prefill attention left out)."""
        steps = fewest_steps(
            w.longest, w.gemm_tokens, w.kv_tokens, self.token_budget, self.kv_capacity_tokens
        )
        if w.gemm_tokens <= 0 and w.kv_tokens <= 0:
            return 0.0
        return step_bound_time(
            self.line, self.profile.steps, self.engine, w.gemm_tokens, w.decodes, 0.0, w.kv_tokens, steps
        )


def equal_time_parts(model: ShareTimeModel, fixed: list[ShareWork], spread: ShareWork) -> np.ndarray:
    """Parts ``x_k >= 0`` (summing to 1) of the divisible work ``spread`` to add to each share's
    ``fixed`` work so that the predicted times ``model.time(fixed_k + x_k spread)`` are equal where
    ``x_k > 0`` and no higher than that elsewhere (a share whose fixed work alone is slower gets
    none): the smallest common finish that takes all of ``spread``."""
    parts = len(fixed)

    def time(k: int, x: float) -> float:
        return model.time(fixed[k].plus(spread, x))

    def part_within(k: int, t: float) -> float:
        """The most of ``spread`` share ``k`` takes and still finishes by ``t``."""
        if time(k, 0.0) > t:
            return 0.0
        lo, hi = 0.0, 1.0
        if time(k, hi) <= t:
            return hi
        for _ in range(_ITERATIONS):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if time(k, mid) <= t else (lo, mid)
        return lo

    lo = min(time(k, 0.0) for k in range(parts))
    hi = max(time(k, 1.0) for k in range(parts))
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2
        if sum(part_within(k, mid) for k in range(parts)) >= 1.0:
            hi = mid
        else:
            lo = mid
    x = np.array([part_within(k, hi) for k in range(parts)])
    return x / x.sum() if x.sum() > 0 else np.full(parts, 1.0 / parts)
