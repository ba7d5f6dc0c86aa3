"""Data parallelism: N replicas, one simpy process each, sharing one clock.

Each replica is an :class:`Engine` with its own admission policy over its share of the requests;
the run ends when the last replica finishes (the makespan). How shares are made:

* baselines (``fifo``, ``dfs``, ``balance``): the policy's order is cut into N contiguous parts of
  (nearly) equal estimated tokens sum(p + d_hat); each replica runs its part in order, as if the
  ordered file were sharded. A DFS order thus gives the last replica the memory-heavy tail.
* ``blend``: see :func:`blendsim.sim.blend_admission.carve_blend_shares` (blendserve.md §4.6).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from blendsim.sim.admission import Admission
from blendsim.sim.engine import Engine

PROGRESS_EVERY = 512  # steps between progress-bar updates


def split_contiguous(order: np.ndarray, weight: np.ndarray, parts: int) -> list[np.ndarray]:
    """Cut ``order`` into ``parts`` contiguous pieces of nearly equal total ``weight`` (by position)."""
    if parts == 1:
        return [order]
    cum = np.cumsum(weight[order].astype(np.float64))
    total = cum[-1] if len(cum) else 0.0
    cuts = np.searchsorted(cum, total * np.arange(1, parts) / parts, side="right")
    return np.split(order, cuts)


def _replica(env: simpy.Environment, engine: Engine, policy: Admission, tick: Callable[[int], None]):
    last = 0
    while True:
        policy.admit(engine)
        if engine.idle:
            if policy.exhausted:
                break
            raise RuntimeError("a replica stalled: nothing running and the next request was not "
                               "admitted (a request larger than the KV cache?)")
        dt = engine.step()
        yield env.timeout(dt)
        if engine.step_index % PROGRESS_EVERY == 0:
            tick(engine.finished - last)
            last = engine.finished
    tick(engine.finished - last)


def run_replicas(pairs: list[tuple[Engine, Admission]], tick: Callable[[int], None] | None = None) -> float:
    """Run every (engine, policy) pair to completion on one simpy clock; returns the makespan."""
    env = simpy.Environment()
    for engine, policy in pairs:
        env.process(_replica(env, engine, policy, tick or (lambda _n: None)))
    env.run()
    return max((engine.now for engine, _ in pairs), default=0.0)
