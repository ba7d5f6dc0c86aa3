"""Engine-calibrated profile: fit the step model to vLLM's own steps.

On a real engine a step costs more than its kernels (scheduling, sampling, Python). The calibration
runs a grid of *phases* through one vLLM engine, each a batch of identical requests with unique
prompts (no prefix sharing) admitted together (or one every few steps: staggered) and run to
completion before the next phase, so the steps cover prefill-only steps (short to chunked long
prompts, and full steps of several chunks), decode steps from 1 to 160 sequences at short and long
contexts, the mixed steps between them, and steps of one small prefill chunk beside decodes. The
grid's uniform batches are unlike any validation trace (whose requests mix sources and lengths).

Every step's exact composition (``BatchShape`` counts from the scheduler's output) and wall time is
recorded; the serial step model's parameters (GEMM efficiency curve, weight-bound bandwidth, KV and
attention efficiencies, per-step and per-sequence overheads, attention latencies) are fitted by least
squares on relative residuals ``predicted / measured - 1`` with a soft-L1 loss (steps stalled by other
processes are outliers, not engine cost), starting from the kernel profile's values, whose hardware
peaks are kept. The report gives the step MAPE, the median step error and the total-time error.
The first steps of the run (warm-up) are left out of the fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from blendsim.errors import UserError
from blendsim.executor.pacing import Pacing
from blendsim.executor.records import StepRecord, steps_to_columns
from blendsim.outputs import atomic_outputs, output_file
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile, Provenance
from blendsim.profiler.step_params import StepParams
from blendsim.sim.simulation.result import write_parquet
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

WARMUP_STEPS = 3
SEED = 7919  # calibration prompts differ from any trace's (the validation uses small seeds)
FIT_FIELDS = (
    "gemm_eff_max",
    "gemm_n_half",
    "weight_bw_eff",
    "kv_bw_eff",
    "attn_eff",
    "step_overhead_s",
    "seq_overhead_s",
    "decode_attn_latency_s",
    "prefill_attn_latency_s",
)
UPPER = {
    "gemm_eff_max": 2.0,
    "weight_bw_eff": 2.0,
    "kv_bw_eff": 2.0,
    "attn_eff": 2.0,
    "gemm_n_half": 4096.0,
    "step_overhead_s": 1.0,
    "seq_overhead_s": 0.1,
    "decode_attn_latency_s": 1.0,
    "prefill_attn_latency_s": 1.0,
    "decode_prefill_s": 1.0,
}
LOWER_EFF = 1e-4
ROBUST_SCALE = 0.2  # relative error beyond which a step counts as an outlier (soft-L1 loss)


@dataclass(frozen=True)
class Phase:
    """``requests`` identical requests (prompt, output), handed over together or, with ``stagger``,
    one every ``stagger`` steps (each step then prefills one prompt beside the earlier ones' decodes)."""

    requests: int
    prompt: int
    output: int
    stagger: int = 0

    def release_steps(self) -> np.ndarray | None:
        return np.arange(self.requests, dtype=np.int64) * self.stagger if self.stagger else None


# prefill shapes (output 2: one decode; 10 x 500 fills whole 2,048-token steps with several chunks
# continuing each other), decode batches at short and long contexts, then staggered phases whose steps
# mix one small prefill chunk with decodes (the steps of a paced or continuously admitting engine)
FULL_GRID = (
    Phase(1, 1800, 2),
    Phase(1, 3500, 2),
    Phase(4, 450, 2),
    Phase(12, 100, 2),
    Phase(2, 900, 2),
    Phase(10, 500, 2),
    Phase(1, 16, 48),
    Phase(4, 24, 40),
    Phase(16, 200, 32),
    Phase(48, 64, 24),
    Phase(24, 700, 24),
    Phase(96, 128, 16),
    Phase(160, 40, 16),
    Phase(8, 1500, 32),
    Phase(24, 64, 40, stagger=2),
    Phase(16, 200, 24, stagger=3),
    Phase(12, 32, 96, stagger=8),
)
QUICK_GRID = (
    Phase(6, 64, 8, stagger=2),
    Phase(1, 1800, 2),
    Phase(4, 450, 2),
    Phase(2, 900, 2),
    Phase(1, 16, 24),
    Phase(16, 200, 16),
    Phase(48, 64, 12),
    Phase(16, 900, 12),
    Phase(128, 40, 8),
)


def phase_trace(grid: tuple[Phase, ...]) -> tuple[Trace, list[np.ndarray]]:
    """One trace holding every phase (unique single-segment prompts) and each phase's positions."""
    reqs: list[Request] = []
    groups: list[np.ndarray] = []
    for k, ph in enumerate(grid):
        start = len(reqs)
        for _ in range(ph.requests):
            i = len(reqs)
            reqs.append(Request(i, f"phase{k}", (i,), (ph.prompt,), ph.output))
        groups.append(np.arange(start, len(reqs), dtype=np.int64))
    return Trace.from_requests(reqs, {"calibration": [dataclasses.asdict(p) for p in grid]}), groups


def run_calibration(config: Any, grid: tuple[Phase, ...], max_steps: int | None = None) -> list[StepRecord]:
    """Run the phases one after the other through one in-process engine; every step's record."""
    from blendsim.executor.prompts import PromptBuilder
    from blendsim.executor.schedule_capture import ScheduleCapture
    from blendsim.executor.vllm_backend import check_trace_fits, engine_max_len
    from blendsim.executor.vllm_driver import Driver, TraceFeed
    from blendsim.executor.vllm_engine import build_engine, scheduler_of

    trace, groups = phase_trace(grid)
    cfg = check_trace_fits(trace, config)
    max_len = engine_max_len(cfg, trace)
    engine = build_engine(config, max_len)
    sched = scheduler_of(engine)
    capture = ScheduleCapture(sched)
    records: list[StepRecord] = []
    for k, positions in enumerate(groups):
        left = None if max_steps is None else max_steps - len(records)
        if left is not None and left <= 0:
            break
        sub = trace.subset(positions)  # keeps the segment ids: prompts stay unique across phases
        prompts = PromptBuilder(sub, int(cfg["vocab_size"]), SEED)
        driver = Driver(
            engine,
            sched,
            sub,
            np.arange(len(sub)),
            config,
            TraceFeed(sub, prompts),
            capture,
            pacing=Pacing(grid[k].release_steps()),
        )
        driver.run(left)
        records.extend(driver.records)
        if driver.wrong_outputs():
            raise RuntimeError(f"calibration phase produced wrong output lengths: {driver.wrong_outputs()}")
    return records


def shapes_and_times(
    records: list[StepRecord], skip: int = WARMUP_STEPS
) -> tuple[list[BatchShape], np.ndarray]:
    rows = [r for r in records[skip:] if r.prefill_tokens + r.decode_seqs > 0]
    shapes = [
        BatchShape(r.prefill_tokens, r.prefill_attn_pairs, r.decode_seqs, r.decode_kv_tokens, r.prefill_seqs)
        for r in rows
    ]
    return shapes, np.asarray([r.step_s for r in rows], dtype=np.float64)


def fit_fields(kernel: StepParams) -> tuple[str, ...]:
    """The parameters fitted to the engine's steps: ``FIT_FIELDS``, and decode attention's extra beside
    a prefill when the kernel profile has that term (its half point kept: the engine's steps rarely
    vary it enough to fit both), so no kernel-measured time reaches the calibrated profile unfitted."""
    return FIT_FIELDS + ("decode_prefill_s",) if kernel.decode_prefill_half > 0 else FIT_FIELDS


def fit_engine_profile(
    records: list[StepRecord], kernel: Profile, model: ModelSpec, software: dict[str, str] | None = None
) -> tuple[Profile, dict[str, float]]:
    """Fit the serial step model to the measured steps. Returns the profile and its fit report."""
    shapes, times = shapes_and_times(records)
    base = kernel.params
    fields = fit_fields(base)
    if len(shapes) < 2 * len(fields):
        raise UserError(f"calibration measured {len(shapes)} usable steps; at least {2 * len(fields)} needed")
    lower = np.array([LOWER_EFF if f.endswith("_eff") or f == "gemm_eff_max" else 0.0 for f in fields])
    upper = np.array([UPPER[f] for f in fields])

    def predict(x: np.ndarray) -> np.ndarray:
        params = dataclasses.replace(base, **dict(zip(fields, x.tolist(), strict=True)), gemm_latency_s=0.0)
        bound = dataclasses.replace(kernel, params=params).bind(model)
        return np.array([bound.step_time(s, "serial").total_s for s in shapes])

    x0 = np.clip([getattr(base, f) for f in fields], lower, upper)
    starts = [x0, np.clip(x0 * 0.5, lower, upper), np.clip(x0 * 2.0, lower, upper)]
    best = None
    for start in starts:
        # soft-L1: steps slowed by other processes (seen here: 1 s stalls of a 30 ms step) are outliers
        res = least_squares(
            lambda x: predict(x) / times - 1.0,
            start,
            bounds=(lower, upper),
            x_scale="jac",
            loss="soft_l1",
            f_scale=ROBUST_SCALE,
        )
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    pred = predict(best.x)
    ape = np.abs(pred / times - 1.0)
    report = {
        "step_mape": float(np.mean(ape)),
        "step_median_ape": float(np.median(ape)),
        "total_time_error": float(pred.sum() / times.sum() - 1.0),
        "steps": float(len(times)),
        "measured_s": float(times.sum()),
    }
    params = dataclasses.replace(base, **dict(zip(fields, best.x.tolist(), strict=True)), gemm_latency_s=0.0)
    prov = Provenance(
        measured=True,
        device=f"{kernel.provenance.device} via vLLM",
        date=dt.date.today().isoformat(),
        software=dict(software or {}),
        fit_error={"step": report["step_mape"]},
        sources={f: f"least-squares fit on {len(times)} vLLM steps" for f in fields},
        notes="engine-calibrated (serial): vLLM step wall time incl. scheduling and sampling; "
        f"hardware peaks from {kernel.name}",
    )
    return Profile(f"{kernel.name}-vllm", kernel.hardware, model.name, params, prov), report


def calibrate_cli(args: argparse.Namespace, config: Any) -> int:
    from blendsim.executor.vllm_engine import vllm_installed
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import load_profile

    output = output_file(args.output, "-o", inputs=[args.profile])
    steps_path = output_file(
        f"{args.output.removesuffix('.json')}_steps.parquet", "-o", inputs=[args.profile]
    )
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    model = get_model(args.model)
    kernel = load_profile(args.profile).bind(model)
    grid = QUICK_GRID if args.quick else FULL_GRID
    t0 = time.perf_counter()
    records = run_calibration(config, grid, args.max_steps)
    run_s = time.perf_counter() - t0
    profile, report = fit_engine_profile(records, kernel, model, {"vllm": vllm_installed() or "?"})
    with atomic_outputs(output, steps_path) as (profile_tmp, steps_tmp):  # both files or neither
        profile.save(profile_tmp)
        write_parquet(steps_tmp, steps_to_columns(records))
    print(
        f"calibration: {len(records)} steps in {run_s:.0f} s; fit on {int(report['steps'])} steps: "
        f"step MAPE {report['step_mape']:.1%} (median {report['step_median_ape']:.1%}), "
        f"total time error {report['total_time_error']:+.1%}"
    )
    print(f"wrote {args.output} and {steps_path}")
    return 0
