"""``blendsim plan-batch``'s work: an OpenAI batch file, planned by each policy, written in the chosen order.

The batch is imported (:mod:`blendsim.traces.importers.openai`: tokenized as vLLM tokenizes it, split
into the engine's KV blocks), its output lengths estimated (``max_tokens``, an earlier run's results,
a field, or a pilot run: :mod:`blendsim.executor.pilot`), and each policy planned and simulated on the
engine the batch will run on: the vLLM engine's configuration (serial steps, its token budget, running
cap, KV block and KV capacity) and a profile of it. What is predicted depends on the target:

* ``run-batch`` (default): the ordered file as ``vllm run-batch`` of the pinned vLLM runs it, and as
  ``blendsim run-batch`` runs it without pacing: every line submitted at once, admitted FCFS in file
  order. A policy's file order is the order its simulation first admitted requests in (for ``blend``,
  its two scanners merged; for ``lpm``, its waiting queue as the engine re-sorted it), and its
  prediction is that order simulated FCFS.
* ``replay``: blendsim's own paced replay (``blendsim run-batch`` with the plan file): the policy's
  simulation itself, whose release steps and prefill caps go into the plan file.

The policy with the highest predicted throughput is written (or the one ``choose`` names): the
ordered file holds the batch's lines, byte for byte, in its order, and the plan file beside it
(:mod:`blendsim.executor.batch_plan`) holds every prediction. Estimated lengths plan and predict
alike; the prediction is only as good as the estimate (the plan records its source).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.executor.batch_plan import BatchPlan, file_sha256, plan_path
from blendsim.executor.pacing import Pacing
from blendsim.executor.vllm_engine import VllmRunConfig, kv_capacity_config
from blendsim.outputs import atomic_output
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.result import SimResult
from blendsim.traces.trace import Trace

Say = Callable[[str], None]
FILE_ORDER = "fifo"  # the batch as given: the baseline every margin is measured against


@dataclass(frozen=True)
class PlanBatchRequest:
    batch: str
    ordered: str
    policies: Sequence[str]
    target: str
    model: ModelSpec
    profile: Profile
    engine: EngineConfig
    vllm: VllmRunConfig
    choose: str = "best"
    seed: int = 0


@dataclass(frozen=True)
class Predicted:
    """One policy's prediction: the order it writes (batch line ranks) and the run that predicts it."""

    policy: str
    order: np.ndarray
    sim: SimResult

    def numbers(self) -> dict[str, Any]:
        s = self.sim
        saved = int(np.asarray(s.admission.get("cached_tokens", np.zeros(0))).sum())
        return {
            "throughput_tok_s": s.throughput_tok_s,
            "makespan_s": s.makespan_s,
            "steps": s.steps_run,
            "total_tokens": s.total_tokens,
            "preemptions": s.preemptions,
            "cached_tokens": saved,
            "sharing": s.sharing,
            "sharing_kept": s.sharing / s.optimal_sharing if s.optimal_sharing else 1.0,
            "fraction_of_optimal": s.fraction_of_optimal,
        }


def predict(trace: Trace, policy: str, req: PlanBatchRequest, config: EngineConfig) -> Predicted:
    """Plan and simulate ``policy`` for the target (module docstring)."""
    from blendsim.sim.planning.estimate import ORACLE
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.simulation.run import simulate

    plan = make_plan(trace, policy, req.model, req.profile.hardware, estimation=ORACLE, seed=req.seed)
    sim = simulate(trace, plan, req.model, req.profile, config)
    order = np.asarray(sim.admission["position"], dtype=np.int64)
    # vllm run-batch applies no pacing, no prefill cap and no admission-time reordering (lpm)
    paced = plan.two_sided or plan.prefill_cap is not None or plan.admission != "fcfs"
    if req.target == "run-batch" and paced:  # run FCFS in that order, unpaced
        ordered = trace.subset(order)
        fcfs = make_plan(ordered, FILE_ORDER, req.model, req.profile.hardware, estimation=ORACLE)
        sim = simulate(ordered, fcfs, req.model, req.profile, config)
        sim.policy = policy
    return Predicted(policy, order, sim)


def plan_batch(req: PlanBatchRequest, trace: Trace, say: Say) -> BatchPlan:
    """Predict every policy, write the chosen order and its plan file; the plan written."""
    config = kv_capacity_config(req.model, req.engine, req.vllm.kv_cache_gib)
    runs: dict[str, Predicted] = {}
    for policy in req.policies:
        runs[policy] = predict(trace, policy, req, config)
        say(f"{policy}: predicted {runs[policy].sim.throughput_tok_s:,.0f} tok/s")
    chosen = _choose(runs, req.choose)
    best = runs[chosen]
    write_ordered(req.batch, best.order, req.ordered)
    extra = _margins(runs, chosen)
    pacing = Pacing.from_sim(best.sim) if req.target == "replay" else Pacing()
    plan = BatchPlan(
        target=req.target,
        policy=chosen,
        batch={"file": os.path.basename(req.batch), "sha256": file_sha256(req.batch), "requests": len(trace)},
        ordered={"file": os.path.basename(req.ordered), "sha256": file_sha256(req.ordered)},
        lengths=dict(trace.metadata.get("output_lengths", {})),
        engine=dataclasses.asdict(config),
        vllm={k: v for k, v in req.vllm.as_dict().items() if k != "model_dir"},
        profile=req.profile.name,
        predictions={p: r.numbers() for p, r in runs.items()},
        order=best.order.tolist(),
        release_steps=None if pacing.release_steps is None else pacing.release_steps.tolist(),
        prefill_caps=None if pacing.prefill_caps is None else pacing.prefill_caps.tolist(),
        extra={
            **extra,
            "model": req.model.name,
            "seed": req.seed,
            "imported": trace.metadata.get("imported"),
        },
    )
    plan.write(plan_path(req.ordered))
    return plan


def _choose(runs: dict[str, Predicted], choose: str) -> str:
    if choose == "best":
        return max(runs, key=lambda p: runs[p].sim.throughput_tok_s)
    if choose not in runs:
        raise UserError(f"--choose {choose!r} is not among the policies planned ({', '.join(runs)})")
    return choose


def _margins(runs: dict[str, Predicted], chosen: str) -> dict[str, Any]:
    """The chosen policy's predicted gain over the file as given and over the next-best policy."""
    mine = runs[chosen].sim.throughput_tok_s
    others = {p: r.sim.throughput_tok_s for p, r in runs.items() if p != chosen}
    out: dict[str, Any] = {}
    if FILE_ORDER in runs and chosen != FILE_ORDER:
        out["margin_over_file_order"] = mine / runs[FILE_ORDER].sim.throughput_tok_s - 1
    if others:
        runner = max(others, key=lambda p: others[p])
        out["runner_up"] = runner
        out["margin_over_runner_up"] = mine / others[runner] - 1
    return out


def batch_lines(path: str) -> list[bytes]:
    """The non-blank lines of a batch file, as stored (each ending in a newline), in file order."""
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    opener: Any = gzip.open if compressed else open
    with opener(path, "rb") as fh:
        return [ln if ln.endswith(b"\n") else ln + b"\n" for ln in fh if ln.strip()]


def write_ordered(batch: str, order: np.ndarray, out: str) -> None:
    """``batch``'s lines in ``order`` (ranks among its non-blank lines), atomically."""
    lines = batch_lines(batch)
    if len(lines) != len(order):
        raise RuntimeError(f"{batch} has {len(lines)} request lines, the plan {len(order)}")
    with atomic_output(out) as tmp, open(tmp, "wb") as fh:
        fh.writelines(lines[int(k)] for k in order)


def table(plan: BatchPlan) -> str:
    """The predictions for a person: one row per policy, the chosen one marked, then the margins."""
    head = (
        f"{'policy':<8} {'tok/s':>10} {'makespan':>10} {'steps':>7} {'cached tok':>11} {'kept':>6} "
        f"{'preempt':>7}"
    )
    rows = [
        f"predicted for {plan.target} ({plan.profile}; output lengths: {plan.lengths.get('source', '?')})",
        head,
    ]
    for policy, p in plan.predictions.items():
        mark = " <- written" if policy == plan.policy else ""
        rows.append(
            f"{policy:<8} {p['throughput_tok_s']:>10,.1f} {p['makespan_s']:>9.1f}s {p['steps']:>7} "
            f"{p['cached_tokens']:>11,} {p['sharing_kept']:>6.1%} {p['preemptions']:>7}{mark}"
        )
    if "margin_over_file_order" in plan.extra:
        rows.append(
            f"margin of {plan.policy} over the file as given: {plan.extra['margin_over_file_order']:+.1%}"
        )
    if "runner_up" in plan.extra:
        rows.append(
            f"margin over the runner-up ({plan.extra['runner_up']}): "
            f"{plan.extra['margin_over_runner_up']:+.1%}"
        )
    return "\n".join(rows)
