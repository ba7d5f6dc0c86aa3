"""fifo: the trace's own (arrival) order, one request per unit."""

from __future__ import annotations

from typing import Any

import numpy as np

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, no_options, per_request_plan


def build(ctx: PlanningInput, **options: Any) -> Plan:
    no_options("fifo", options)
    return per_request_plan("fifo", ctx, np.arange(len(ctx.trace), dtype=np.int64))
