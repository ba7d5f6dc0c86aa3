"""lpm: SGLang's longest-prefix-match scheduling, applied by the engine at admission time.

The plan is the arrival order (SGLang's waiting queue: every request of an offline pool is queued
at the start, in the order submitted) with ``admission = "lpm"``: the engine's admission
(:class:`blendsim.sim.simulation.lpm_admission.LpmAdmission`) re-sorts the waiting queue on its
radix cache before each admission, as SGLang's ``schedule_policy.py`` does, and falls back to FCFS
while more than 128 requests wait, which in a whole pool is all but its last 128 requests. The
order it really ran in is known only after the simulation (its ``_admission.parquet``).
One request per unit; no prefill cap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies.base import PlanningInput, no_options, per_request_plan


def build(ctx: PlanningInput, **options: Any) -> Plan:
    no_options("lpm", options)
    plan = per_request_plan("lpm", ctx, np.arange(len(ctx.trace), dtype=np.int64))
    plan.admission = "lpm"
    return plan
