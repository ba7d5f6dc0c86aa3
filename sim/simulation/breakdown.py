"""Where a run's time goes, next to the practical optimum: why a policy is below it.

The step model (``blendsim.profiler.step_model``) makes a step's compute *linear* above the
weight-bound ridge: ``a_n (n + n_half) + a_s (s + n_half) + a_attn pairs`` (plus any fitted
latency), i.e. work-proportional terms plus a fixed ``b = (a_n + a_s) n_half`` per step; below the
ridge a GEMM costs its weight read instead. The optimum (``Profile.optimal_time``) keeps only the
work terms, no per-step cost at all. So a run of ``S`` steps pays, on top of the optimum's work:

* ``gemm_fixed_s = S b``: the GEMM efficiency curve's half-saturation tokens, every step;
* ``weight_bound_s``: the extra of steps whose GEMMs are weight-bound (too few tokens) or carry a
  fitted latency (``sum of compute - work - S b``);
* ``overhead_s``: per-step and per-sequence overhead (and tensor-parallel all-reduce);
* ``interference_s``: a step's time beyond ``max(C, M)`` and its overhead: ``min(C, M)`` on the serial
  engine, what the interference model leaves exposed on the overlapping one;
* ``lost_work_s``: compute of prefill tokens the optimum would have served from the cache (sharing
  lost, recomputation after preemption);
* imbalance: steps led by one resource while the other idles (the busy fractions show it).

No policy can take fewer steps than the longest request's output (each output token is one step),
so ``critical_path_s = longest output x the cheapest step``. Nor fewer than the GEMM tokens over the
token budget, nor fewer than the decode KV reads over the KV capacity (a step's decode attention
reads at most the whole cache). ``step_bound_s`` is the optimum with the fixed per-step cost of the
fewest steps any run needs (the largest of those three, per replica) added: the best a step-based
engine can do under this profile and KV capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.step_model import StepModel
from blendsim.profiler.work_counts import (
    decode_kv_bytes,
    layer_gemm_flops,
    layer_weight_bytes,
    lm_head_flops,
    lm_head_weight_bytes,
    prefill_attn_flops,
)
from blendsim.sim.simulation.record import ROLES

_BIG = 1e6  # tokens: far above any ridge, so the step model is in its linear regime


@dataclass(frozen=True)
class StepLine:
    """The linear form of a step model (module docstring), recovered from ``step_parts``."""

    per_token: float  # a_n: layer GEMM seconds per token
    per_seq: float  # a_s: LM head seconds per sampled sequence
    per_pair: float  # a_attn: prefill attention seconds per query-key pair
    per_kv: float  # decode attention seconds per KV token read
    fixed: float  # b: compute seconds every step with tokens pays (n_half terms, latencies)
    step_overhead: float  # seconds per step
    seq_overhead: float  # seconds per sampled sequence
    token_overhead: float  # seconds per token (tensor-parallel all-reduce; 0 at tp = 1)

    @classmethod
    def of(cls, sm: StepModel) -> StepLine:
        def c(n: float, pairs: float, s: float) -> float:
            return sm.step_parts(n, pairs, 0, 0, s)[0]

        def o(n: float, s: float) -> float:
            return sm.step_parts(n, 0, 0, 0, s)[2]

        a_n = (c(2 * _BIG, 0, _BIG) - c(_BIG, 0, _BIG)) / _BIG
        a_s = (c(_BIG, 0, 2 * _BIG) - c(_BIG, 0, _BIG)) / _BIG
        a_p = (c(_BIG, 2 * _BIG, _BIG) - c(_BIG, _BIG, _BIG)) / _BIG
        a_kv = (sm.step_parts(0, 0, 0, 2 * _BIG, 0)[1] - sm.step_parts(0, 0, 0, _BIG, 0)[1]) / _BIG
        t_step = o(0, 0)
        return cls(
            a_n,
            a_s,
            a_p,
            a_kv,
            c(_BIG, 0, _BIG) - (a_n + a_s) * _BIG,
            t_step,
            (o(0, _BIG) - t_step) / _BIG,
            (o(_BIG, 0) - t_step) / _BIG,
        )

    def work_compute(self, total: BatchShape) -> float:
        """Compute seconds proportional to the work of ``total`` (no per-step part)."""
        return (
            self.per_token * (total.prefill_tokens + total.decode_seqs)
            + self.per_seq * (total.decode_seqs + total.prefill_seqs)
            + self.per_pair * total.prefill_attn_pairs
        )


def time_breakdown(
    series: dict[str, np.ndarray],
    work: BatchShape,
    optimal: BatchShape,
    sm: StepModel,
    engine: str,
    token_budget: int,
    kv_capacity_tokens: int,
    longest_output: int,
    dp: int,
    makespan: float,
) -> dict[str, Any]:
    """The breakdown of a run (module docstring). ``series`` is the run's per-step series (every
    replica), ``work`` the totals the run executed (its prefill tokens, attention pairs, decodes,
    KV reads and prefill chunks), ``optimal`` the workload's totals at the best sharing. Seconds
    are summed over replicas; busy fractions are over ``dp x makespan``."""
    line = StepLine.of(sm)
    c = np.asarray(series.get("compute_s", np.zeros(0)))
    m = np.asarray(series.get("memory_s", np.zeros(0)))
    step = np.asarray(series.get("step_s", np.zeros(0)))
    overhead = np.asarray(series.get("overhead_s", np.zeros(0)))
    lead = np.maximum(c, m)
    interference = step - lead - overhead
    steps = len(step)
    comp, mem = float(c.sum()), float(m.sum())
    work_c = line.work_compute(work)
    opt_c = line.work_compute(optimal)
    opt_m = line.per_kv * optimal.decode_kv_tokens
    gemm_tokens = optimal.prefill_tokens + optimal.decode_seqs
    s_min = fewest_steps(
        longest_output, gemm_tokens / dp, optimal.decode_kv_tokens / dp, token_budget, kv_capacity_tokens
    )
    seqs = optimal.decode_seqs + optimal.prefill_seqs
    step_bound = step_bound_time(
        line,
        sm,
        engine,
        gemm_tokens / dp,
        seqs / dp,
        optimal.prefill_attn_pairs / dp,
        optimal.decode_kv_tokens / dp,
        s_min,
    )
    cheapest = sm.step_time(BatchShape(0, 0.0, 1, 1, 0), engine).total_s
    span = makespan * dp
    out = {
        "compute_s": comp,
        "memory_s": mem,
        "compute_busy": comp / span if span else 0.0,
        "memory_busy": mem / span if span else 0.0,
        "compute_led_s": float(lead[c >= m].sum()),
        "memory_led_s": float(lead[c < m].sum()),
        "interference_s": float(interference.sum()),
        "overhead_s": float(overhead.sum()),
        "work_compute_s": work_c,
        "optimal_compute_s": opt_c,
        "optimal_memory_s": opt_m,
        "lost_work_s": work_c - opt_c,
        "gemm_fixed_s": steps * line.fixed,
        "weight_bound_s": comp - work_c - steps * line.fixed,
        "critical_path_steps": int(longest_output),
        "min_step_s": cheapest,
        "critical_path_s": int(longest_output) * cheapest,
        "step_bound_steps": s_min,
        "step_bound_s": step_bound,
        "fraction_of_step_bound": step_bound / makespan if makespan else 0.0,
    }
    out["fixed_cost_s"] = out["gemm_fixed_s"] + out["weight_bound_s"] + out["overhead_s"]
    return out


def fewest_steps(
    longest_output: float, gemm_tokens: float, kv_tokens: float, token_budget: int, kv_capacity_tokens: int
) -> int:
    """The fewest steps a replica needs for this work: one per token of its longest output, at most
    ``token_budget`` GEMM tokens per step, at most the whole KV cache read by a step's decodes."""
    return max(
        int(longest_output),
        math.ceil(gemm_tokens / token_budget),
        math.ceil(kv_tokens / max(kv_capacity_tokens, 1)),
    )


def step_bound_time(
    line: StepLine,
    sm: StepModel,
    engine: str,
    gemm_tokens: float,
    seqs: float,
    pairs: float,
    kv_tokens: float,
    steps: int,
) -> float:
    """The least time of one replica that runs these totals (GEMM tokens, sampled sequences,
    prefill attention pairs, decode KV reads) in ``steps`` steps: the work terms plus the fixed
    GEMM cost of every step on the GEMM side, composed as the engine composes totals
    (``StepModel.compose_totals``), plus the per-step and per-sequence overheads."""
    gemm = line.per_token * gemm_tokens + steps * line.fixed
    composed = sm.compose_totals(
        gemm, line.per_seq * seqs, line.per_pair * pairs, line.per_kv * kv_tokens, engine
    )
    overheads = steps * line.step_overhead + line.seq_overhead * seqs + line.token_overhead * gemm_tokens
    return composed + overheads


def role_breakdown(
    series: dict[str, np.ndarray], roles: list[int], makespan: float, sm: StepModel
) -> dict[str, Any]:
    """Per role of a disaggregated run (``roles``: each replica's role code, by replica index): its
    replicas and steps; the share of their time (replicas x makespan) they step at all (``busy``)
    and spend in the step model's compute and memory terms (``compute_busy``, ``memory_busy``;
    weight-bound GEMMs count as compute); and, gpt-fast style, the FLOPs they did and the bytes
    they read (weights once per step, decode KV) over the peaks for that time
    (``flop_utilization``, ``bandwidth_utilization``). The paper's reading of Figure 8: the prefill
    side leaves its memory bandwidth idle, the decode side its compute."""
    model, hw = sm.model, sm.hardware
    replica = np.asarray(series.get("replica", np.zeros(0, dtype=np.int32)))
    weights = layer_weight_bytes(model) + lm_head_weight_bytes(model)
    out: dict[str, Any] = {}
    for code in sorted(set(roles)):
        members = [r for r, role in enumerate(roles) if role == code]
        mask = np.isin(replica, members)
        span = len(members) * makespan

        def total(column: str, mask: np.ndarray = mask) -> float:
            return float(np.asarray(series[column], dtype=np.float64)[mask].sum())

        prefill, decode = total("prefill_tokens"), total("decode_tokens")
        flops = (
            layer_gemm_flops(model, prefill + decode)
            + lm_head_flops(model, decode + total("prefill_seqs"))
            + prefill_attn_flops(model, total("prefill_attn_pairs"))
        )
        read = weights * int(mask.sum()) + decode_kv_bytes(model, total("decode_kv_tokens"))
        out[ROLES[code]] = {
            "replicas": len(members),
            "steps": int(mask.sum()),
            "busy": total("step_s") / span if span else 0.0,
            "compute_busy": total("compute_s") / span if span else 0.0,
            "memory_busy": total("memory_s") / span if span else 0.0,
            "flop_utilization": flops / (hw.peak_flops * span) if span else 0.0,
            "bandwidth_utilization": read / (hw.mem_bandwidth * span) if span else 0.0,
            "prefill_tokens": int(prefill),
            "decode_tokens": int(decode),
        }
    return out
