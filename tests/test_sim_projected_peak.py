"""Projected-peak admission of the memory-heavy (right) stream: the peak computation against brute
force, and on a two-unit plan with exact estimates the right side stays inside ``M_R``."""

from __future__ import annotations

import numpy as np
import pytest

from blendsim.profiler.cost import token_comp_time
from blendsim.profiler.gpus import GPUS
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.blend_admission import BlendAdmission
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.projected_peak import RightProjection, projected_peak
from blendsim.sim.simulation.sides import RIGHT
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)


@pytest.mark.parametrize("seed", range(40))
def test_peak_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(0, 12))
    now = int(rng.integers(0, 50))
    ends = rng.integers(0, 120, m)  # some are overdue (end <= now)
    finals = ends + rng.integers(1, 400, m)
    p, d = int(rng.integers(1, 300)), int(rng.integers(1, 150))
    got = RightProjection(ends.tolist(), finals.tolist()).peak_with(now, p, d)
    want = projected_peak(np.append(ends, now + d), np.append(finals, p + d), now)
    assert got == pytest.approx(want)
    alone = RightProjection(ends.tolist(), finals.tolist()).peak(now)
    assert alone == pytest.approx(projected_peak(ends, finals, now))
    # residents past their end kept outside the lists, as one sum at ``now``: the same peaks
    late = ends < now
    overdue = int(np.sum(finals[late] - ends[late]) + late.sum() * now)
    rest = RightProjection(ends[~late].tolist(), finals[~late].tolist())
    assert rest.peak_with(now, p, d, overdue) == got
    assert rest.peak(now, overdue) == alone


def two_unit_case() -> tuple[Trace, Plan]:
    """A compute-heavy unit (long prompts, short outputs, 2,500 requests) and a memory-heavy unit of
    long outputs of different lengths, the longest at the right end (where the right cursor starts)."""
    rng = np.random.default_rng(3)
    left = [
        Request(i, "docs", (i,), (int(rng.integers(1500, 2500)),), int(rng.integers(5, 40)))
        for i in range(2500)
    ]
    outs = np.sort(rng.integers(2000, 24000, 50))
    right = [Request(2500 + j, "video", (2500 + j,), (60,), int(o)) for j, o in enumerate(outs)]
    trace = Trace.from_requests(left + right)
    p, d = trace.prompt_len.astype(float), trace.output_len.astype(float)
    tok_s = token_comp_time(LLAMA, GPUS["a100-80g"])
    kv_s = LLAMA.kv_bytes_per_token / GPUS["a100-80g"].mem_bandwidth
    comp, mem = tok_s * (p + d), kv_s * (p * d + d * d / 2)
    units = [np.arange(2500), np.arange(2500, 2550)]
    plan = Plan(
        "blend",
        np.arange(2550, dtype=np.int64),
        np.array([0, 2500, 2550], dtype=np.int64),
        np.array([comp[u].sum() for u in units]),
        np.array([mem[u].sum() for u in units]),
        np.array([p[u].mean() for u in units]),
        np.array([d[u].mean() for u in units]),
        trace.output_len.copy(),
        two_sided=True,
        target_density=float(comp.sum() / mem.sum()),
    )
    return trace, plan


def run_tracking_right(right_admission: str) -> tuple[int, float, int]:
    """Run the case by hand; returns (largest right KV over M_R while the cursors are apart, in
    tokens; M_R in tokens; preemptions)."""
    trace, plan = two_unit_case()
    cfg = EngineConfig(kv_capacity_override=200_000, right_admission=right_admission)
    blocks = 200_000 // cfg.block_size
    engine = Engine(trace, plan.est_output_len, A100, cfg, blocks)
    adm = BlendAdmission(plan, LLAMA, A100.hardware, cfg, blocks, A100.steps.ridge_tokens())
    worst, m_right = -(10**9), 0.0
    while True:
        adm.admit(engine)
        if engine.idle and adm.exhausted:
            break
        b = adm.budget()
        if b is not None and b.case == "normal":
            m_right = b.m_right / LLAMA.kv_bytes_per_token
            worst = max(worst, engine.sides.kv[RIGHT] - int(m_right))
        engine.step()
    assert engine.stats.finished == len(trace)
    return worst, m_right, engine.stats.preemptions


def test_right_side_never_outgrows_its_partition_with_exact_estimates() -> None:
    worst, m_right, preempted = run_tracking_right("projected_peak")
    assert 0 < m_right < 200_000
    assert worst <= 0
    assert preempted == 0
    # the charge-based rule lets the long outputs outgrow M_R together on the same case and preempt
    worst_ex, _, preempted_ex = run_tracking_right("expected")
    assert worst_ex > 0
    assert preempted_ex > preempted


def test_request_credit_spaces_right_admissions_by_their_own_kv_time() -> None:
    """E8 per request: after admitting (p, d_hat), the right stream waits about (p + d_hat/2) d_hat / M_R
    steps (its credit banks at most one step) unless the engine is idle."""
    trace, plan = two_unit_case()
    cfg = EngineConfig(kv_capacity_override=200_000, blend_request_credit=True)
    blocks = 200_000 // cfg.block_size
    engine = Engine(trace, plan.est_output_len, A100, cfg, blocks)
    adm = BlendAdmission(plan, LLAMA, A100.hardware, cfg, blocks, A100.steps.ridge_tokens())
    last: tuple[int, float] | None = None  # (step, steps its KV-time needs)
    gaps_checked = 0
    r = engine.requests
    while not (engine.idle and adm.exhausted):
        before = len(engine.record.admitted_positions)
        idle = engine.n_running == 0
        adm.admit(engine)
        b = adm.budget()
        for pos in engine.record.admitted_positions[before:].tolist():
            if engine.sides.side[pos] != RIGHT or b is None or b.case != "normal":
                continue
            if last is not None and not idle:
                assert engine.step_index - last[0] >= last[1] - 1
                gaps_checked += 1
            d = r.d_hat[pos]
            last = (engine.step_index, (r.p[pos] + d / 2) * d / (b.m_right / LLAMA.kv_bytes_per_token))
        engine.step()
    assert gaps_checked >= 10
