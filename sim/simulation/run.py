"""Entry points: ``simulate`` a plan, or plan and simulate a policy (``simulate_policy``).

The practical optimum (paper §2.6) is ``Profile.optimal_time`` of the workload's totals at the best
sharing (DFS order, unbounded cache): prompt tokens not served by the cache, their causal attention
pairs, one decode per output token after the first (the prefill step samples the first), and the
decode KV reads sum_i (p + i). With N replicas it is the single-GPU optimum over N.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.profile import Profile
from blendsim.profiler.specs import ModelSpec
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.admission import Admission, FcfsAdmission
from blendsim.sim.simulation.blend_admission import BlendAdmission
from blendsim.sim.simulation.breakdown import time_breakdown
from blendsim.sim.simulation.config import EngineConfig, kv_capacity_tokens
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.replicas import carve_shares, run_replicas, split_contiguous, sub_plan
from blendsim.sim.simulation.result import SimResult
from blendsim.traces.trace import Trace

__all__ = ["EngineConfig", "SimResult", "simulate", "simulate_policy", "kv_capacity_blocks", "optimal_totals"]


def bound_profile(profile: Profile, model: ModelSpec) -> Profile:
    """``profile`` bound to ``model`` (a profile measured for another model is a UserError)."""
    if profile.bound_model is not None and profile.bound_model.name == model.name:
        if profile.model is not None and profile.model != model.name:
            raise UserError(f"profile {profile.name!r} is for model {profile.model!r}, not {model.name!r}")
        return profile
    return profile.bind(model, profile.hardware.tp)


def kv_capacity_blocks(model: ModelSpec, profile: Profile, config: EngineConfig) -> int:
    """KV blocks of one replica: (memory - weights - reserve) over bytes per token, in blocks.
    Under tensor parallelism memory and the activation reserve are per GPU, weights are sharded."""
    if config.kv_capacity_override is not None:
        return int(config.kv_capacity_override) // config.block_size
    hw = profile.hardware
    cfg = config.with_(activation_reserve_bytes=config.activation_reserve_bytes * hw.tp)
    tokens = kv_capacity_tokens(hw.mem_capacity, model.weight_bytes, model.kv_bytes_per_token, cfg)
    if tokens <= 0:
        raise UserError(f"model {model.name} does not fit on {hw.name} x{hw.tp}: no memory left for KV")
    return tokens // config.block_size


def check_requests_fit(trace: Trace, capacity_blocks: int, block_size: int) -> None:
    """A request whose prompt and output KV exceed the whole cache can never finish: UserError.
    It needs ``ceil((p + d) / b)`` blocks, one more when its prompt ends on a block boundary (if it
    is wholly cached, its last block is recomputed into a copy: :mod:`blendsim.sim.simulation.engine`)."""
    p = trace.prompt_len.astype(np.int64)
    need = -(-(p + trace.output_len) // block_size) + (p % block_size == 0)
    bad = np.flatnonzero(need > capacity_blocks)
    if len(bad):
        i = int(bad[0])
        raise UserError(
            f"request {int(trace.request_id[i])} needs {int(need[i]) * block_size} KV tokens "
            f"(prompt {int(trace.prompt_len[i])} + output {int(trace.output_len[i])}) but the "
            f"KV cache holds {capacity_blocks * block_size} tokens; shorten it or add memory "
            f"(--tp)"
        )


def optimal_totals(trace: Trace) -> BatchShape:
    """The workload's step totals at the best sharing (module docstring)."""
    ids = trace.seg_ids
    first = np.zeros(len(ids), dtype=bool)
    first[np.unique(ids, return_index=True)[1]] = True
    hit = np.add.reduceat(np.where(first, 0, trace.seg_lens), trace.seg_offsets[:-1])
    p = trace.prompt_len.astype(np.float64)
    d = trace.output_len.astype(np.float64)
    q = p - hit
    pairs = float(np.sum(q * hit + q * (q + 1) / 2))
    return BatchShape(
        prefill_tokens=int(q.sum()),
        prefill_attn_pairs=pairs,
        decode_seqs=int((d - 1).sum()),
        decode_kv_tokens=int(np.sum((d - 1) * p + (d - 1) * d / 2)),
        prefill_seqs=len(trace),
    )


def block_saved_tokens(trace: Trace, order: np.ndarray, block_size: int) -> int:
    """Prompt tokens an unbounded cache with ``block_size`` blocks serves in ``order`` (positions):
    each request hits the longest prefix of its segment path some earlier request had, rounded
    down to whole blocks, never its last prompt token (as the engine; O(segments), vectorised)."""
    order = np.asarray(order, dtype=np.int64)
    if not len(order):
        return 0
    counts = np.diff(trace.seg_offsets)[order]
    row = np.repeat(np.arange(len(order)), counts)  # rank in ``order`` of each segment occurrence
    starts = np.cumsum(counts) - counts
    idx = np.repeat(trace.seg_offsets[order] - starts, counts) + np.arange(int(counts.sum()))
    ids, lens = trace.seg_ids[idx], trace.seg_lens[idx]
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    seen = row > row[first][inverse]  # an earlier request had it (hence its whole prefix)
    cached = np.add.reduceat(np.where(seen, lens, 0), starts)
    p = trace.prompt_len[order]
    return int(np.sum(np.minimum(cached, p - 1) // block_size * block_size))


def _admissions(
    trace: Trace, plan: Plan, dp: int, model: ModelSpec, profile: Profile, config: EngineConfig, capacity: int
) -> list[Admission]:
    """One admission policy per replica over its share (see :mod:`blendsim.sim.simulation.replicas`)."""
    if plan.two_sided:
        ridge = profile.steps.ridge_tokens()
        return [
            BlendAdmission(sub_plan(plan, idx), model, profile.hardware, config, capacity, ridge)
            for idx in carve_shares(plan, dp)
        ]
    weight = trace.prompt_len + plan.est_output_len
    return [FcfsAdmission(part) for part in split_contiguous(plan.order, weight, dp)]


def simulate(
    trace: Trace,
    plan: Plan,
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig | None = None,
    dp: int = 1,
    *,
    progress: bool = False,
    plan_s: float | None = None,
) -> SimResult:
    """Run ``plan`` on ``dp`` replicas of the engine ``config`` describes (see module docs)."""
    config = config or EngineConfig()
    if dp < 1:
        raise UserError(f"--dp must be >= 1, got {dp}")
    plan.validate(len(trace))
    profile = bound_profile(profile, model)
    capacity = kv_capacity_blocks(model, profile, config)
    check_requests_fit(trace, capacity, config.block_size)
    started = time.perf_counter()
    pairs: list[tuple[Engine, Admission]] = []
    for policy in _admissions(trace, plan, dp, model, profile, config, capacity):
        pairs.append((Engine(trace, plan.est_output_len, profile, config, capacity), policy))
    bar = _progress_bar(len(trace), progress)
    makespan = run_replicas(pairs, bar.update if bar else None)
    if bar:
        bar.close()
    sim_s = time.perf_counter() - started
    engines = [e for e, _ in pairs]
    _check_complete(trace, engines)
    total = int(trace.prompt_len.sum() + trace.output_len.sum())
    best = optimal_totals(trace)
    optimum = profile.optimal_time(best, config.engine) / dp
    series = _series(engines, config.block_size)
    work = BatchShape(
        int(series["prefill_tokens"].sum()),
        sum(e.pairs_done for e in engines),
        int(series["decode_tokens"].sum()),
        sum(e.kv_done for e in engines),
        sum(e.chunks_done for e in engines),
    )
    breakdown = time_breakdown(
        series,
        work,
        best,
        profile.steps,
        config.engine,
        config.token_budget,
        capacity * config.block_size,
        int(trace.output_len.max()) if len(trace) else 0,
        dp,
        makespan,
    )
    return SimResult(
        policy=plan.policy,
        engine=config.engine,
        requests=len(trace),
        total_tokens=total,
        makespan_s=makespan,
        steps_run=sum(e.step_index - 1 for e in engines),
        preemptions=sum(e.preemptions for e in engines),
        sharing=sum(e.saved_tokens for e in engines) / total if total else 0.0,
        optimal_sharing=trace.sharing(),
        optimal_time_s=optimum,
        plan_s=float(plan.stats.get("plan_s", 0.0) if plan_s is None else plan_s),
        sim_s=sim_s,
        steps=series,
        admission=_admission(engines),
        extra={
            "dp": dp,
            "tp": profile.hardware.tp,
            "kv_capacity_tokens": capacity * config.block_size,
            "recomputed_tokens": sum(e.recomputed_tokens for e in engines),
            "outruns": sum(e.outruns for e in engines),
            "prefill_completions": sum(e.prefill_completions for e in engines),
            "block_sharing_bound": _block_bound(trace, engines, config.block_size) / total if total else 0.0,
            "admission_rule": config.admission,
            "right_admission": config.right_admission,
            "profile": profile.name,
            "breakdown": breakdown,
        },
    )


def _block_bound(trace: Trace, engines: list[Engine], block_size: int) -> int:
    """Sharing (in tokens) this run's admission order reaches with no eviction, each replica apart."""
    return sum(
        block_saved_tokens(trace, np.asarray(e.admitted_first, dtype=np.int64), block_size) for e in engines
    )


def _check_complete(trace: Trace, engines: list[Engine]) -> None:
    done = np.full(len(trace), -1, dtype=np.int64)
    for e in engines:
        fin = np.asarray(e.finished_len)
        mask = fin >= 0
        if np.any(done[mask] >= 0):
            raise RuntimeError("a request finished on two replicas")
        done[mask] = fin[mask]
    if not np.array_equal(done, trace.output_len):
        bad = int(np.flatnonzero(done != trace.output_len)[0])
        raise RuntimeError(
            f"request {int(trace.request_id[bad])} finished with {done[bad]} of "
            f"{int(trace.output_len[bad])} tokens"
        )


def _series(engines: list[Engine], block_size: int) -> dict[str, np.ndarray]:
    cols: dict[str, list[np.ndarray]] = {}
    for r, e in enumerate(engines):
        n = len(e.series["time"])
        cols.setdefault("replica", []).append(np.full(n, r, dtype=np.int32))
        cols.setdefault("step", []).append(np.arange(1, n + 1, dtype=np.int64))
        for k, v in e.series.items():
            arr = np.frombuffer(v, dtype=np.float64) if n else np.zeros(0)
            if k == "kv_used_blocks":
                cols.setdefault("kv_used_tokens", []).append((arr * block_size).astype(np.int64))
            elif k in ("prefill_tokens", "decode_tokens", "running", "prefill_cap"):
                cols.setdefault(k, []).append(arr.astype(np.int64))
            else:
                cols.setdefault(k, []).append(arr.copy())
    return {k: np.concatenate(v) for k, v in cols.items()}


def _admission(engines: list[Engine]) -> dict[str, np.ndarray]:
    """First admissions, replica by replica, each in its admission order (SimResult.admission)."""
    pos = [np.asarray(e.admitted_first, dtype=np.int64) for e in engines]

    def cat(name: str, dtype: type) -> np.ndarray:
        return np.concatenate([np.frombuffer(getattr(e, name), dtype=dtype).copy() for e in engines])

    rep = [np.full(len(p), r, dtype=np.int32) for r, p in enumerate(pos)]
    return {
        "position": np.concatenate(pos),
        "side": cat("admitted_side", np.int8),
        "replica": np.concatenate(rep),
        "step": cat("admitted_step", np.int64),
        "time": cat("admitted_time", np.float64),
        "cached_tokens": cat("admitted_cached", np.int64),
    }


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="simulate", leave=False, mininterval=0.5)


def simulate_policy(
    trace: Trace,
    policy: str,
    model: ModelSpec,
    profile: Profile,
    engine: str = "overlap",
    dp: int = 1,
    seed: int = 0,
    *,
    config: EngineConfig | None = None,
    progress: bool = False,
    **options: Any,
) -> SimResult:
    """Plan ``trace`` with ``policy`` (``options`` go to the planner) and simulate it."""
    from blendsim.sim.planning.planner import make_plan

    config = (config or EngineConfig()).with_(engine=engine)
    profile = bound_profile(profile, model)
    started = time.perf_counter()
    plan = make_plan(trace, policy, model, profile.hardware, seed=seed, **options)
    plan_s = time.perf_counter() - started
    return simulate(trace, plan, model, profile, config, dp, progress=progress, plan_s=plan_s)
