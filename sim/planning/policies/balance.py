"""balance: a seeded uniformly random order (the paper's NanoFlow-Balance). One request per unit."""

from __future__ import annotations

from typing import Any

import numpy as np

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, no_options, per_request_plan


def build(ctx: PlanningInput, **options: Any) -> Plan:
    no_options("balance", options)
    rng = np.random.default_rng(np.random.SeedSequence([int(ctx.seed) & 0xFFFFFFFF, 0xBA1]))
    return per_request_plan("balance", ctx, rng.permutation(len(ctx.trace)).astype(np.int64))
