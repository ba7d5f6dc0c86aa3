"""``make_plan``: trace → prefix tree → estimated output lengths → policy → Plan.

Planning prices requests with *estimated* output lengths at the GPU's datasheet peaks (as the paper
does); the simulator later runs the true lengths. Every plan builds its own tree, so policies may
edit it. ``stats["plan_s"]`` is the wall time of the whole call.
"""

from __future__ import annotations

import time
from typing import Any

from blendsim.profiler.gpus import HardwareSpec, get_gpu
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.sim.planning.estimate import EstimationConfig, estimate_output_lengths
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.policies import get_policy
from blendsim.sim.planning.policies.base import PlanningInput
from blendsim.sim.planning.tree import PrefixTree
from blendsim.traces.trace import Trace


def make_plan(
    trace: Trace,
    policy: str,
    model: ModelSpec | str,
    gpu: HardwareSpec | str,
    *,
    estimation: EstimationConfig | None = None,
    seed: int = 0,
    **policy_options: Any,
) -> Plan:
    """The admission plan of ``policy`` for ``trace`` (see :class:`blendsim.sim.planning.plan.Plan`),
    its lengths estimated as ``estimation`` says (default: the paper's)."""
    start = time.perf_counter()
    est = estimation or EstimationConfig()
    build = get_policy(policy)
    model = get_model(model) if isinstance(model, str) else model
    gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
    tree = PrefixTree.from_trace(trace)
    estimate = estimate_output_lengths(
        tree,
        trace.output_len,
        est,
        seed=seed,
        sources=trace.sources,
        source_codes=trace.source_codes,
    )
    tree.set_lengths(estimate.lengths, model, gpu)
    plan: Plan = build(PlanningInput(trace, model, gpu, tree, estimate, seed, est), **policy_options)
    plan.stats.update(
        requests=len(trace),
        units=plan.num_units,
        **est.summary(),
        sampled_requests=int(estimate.sampled.sum()),
        known_lengths=int(estimate.known.sum()),
        seed=seed,
        length_error=estimate.mean_abs_rel_error(trace.output_len),
        model=model.name,
        gpu=gpu.name,
        plan_s=time.perf_counter() - start,
    )
    return plan
