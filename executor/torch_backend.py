"""``--backend torch``: replay a simulation's steps on torch kernels and measure each one.

The steps come from the simulation's own record (``SimResult.steps``: each step's exact
``BatchShape``, :mod:`blendsim.sim.simulation.record`), and each is predicted by the profile the
simulation ran on, operator by operator. Which steps: every simulated step of every replica, or, with
``max_steps``, the first ``max_steps`` of each replica (``select="first"``) or ``max_steps`` spread
evenly over the run (``select="even"``, which covers prefill-heavy and decode-heavy phases alike).
Replicas (``dp``) replay one after another on the one device; the measured makespan is the largest
replica's sum, as if they had run side by side.

Throughput on both sides uses one numerator: for a complete replay, all the trace's tokens (as
``simulate`` counts them); for a partial one, the GEMM tokens (prefill + decode) of the replayed
steps. Measured and simulated then differ only by their step times.

Ctrl-C stops the replay after the current step and keeps what was measured (``interrupted``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blendsim.errors import UserError
from blendsim.executor.recorded_steps import SELECTIONS, predicted, select_rows, step_shape
from blendsim.profiler.forward_pass import OPERATORS, StepReplayer
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile
from blendsim.sim.simulation.result import SimResult


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay. ``max_steps`` (per replica) None = all; ``threads`` None = the profile's."""

    device: str = "cpu"
    max_steps: int | None = None
    select: str = "first"
    clock: str = "auto"
    warmup: int = 2
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"steps to replay must be >= 1, got {self.max_steps}")
        if self.select not in SELECTIONS:
            raise UserError(f"unknown step selection {self.select!r}; valid: {', '.join(SELECTIONS)}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"torch threads must be >= 1, got {self.threads}")


@dataclass
class ReplayResult:
    """A replay: the simulation it replays, the rows of its step record replayed, the prediction of
    each (``pred``: :data:`~blendsim.executor.recorded_steps.PREDICTED` columns) and its measured
    times (``measured`` maps ``step_s``, ``wall_s``, ``cpu_s`` and ``<op>_s``), all aligned with
    ``rows``. Rows not reached (interrupt) are absent from ``rows``."""

    policy: str
    engine: str
    device: str
    sim: SimResult
    rows: np.ndarray
    pred: dict[str, np.ndarray]
    measured: dict[str, np.ndarray]
    clock: str
    wall_s: float
    interrupted: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.rows) == len(self.sim.steps["step"]) and not self.interrupted

    def _makespan(self, times: np.ndarray) -> float:
        rep = self.sim.steps["replica"][self.rows]
        return float(max((times[rep == r].sum() for r in np.unique(rep)), default=0.0))

    @property
    def tokens(self) -> int:
        if self.complete:
            return self.sim.total_tokens
        s = self.sim.steps
        return int(s["prefill_tokens"][self.rows].sum() + s["decode_tokens"][self.rows].sum())

    @property
    def measured_makespan_s(self) -> float:
        return self._makespan(self.measured["step_s"])

    @property
    def simulated_makespan_s(self) -> float:
        return self._makespan(self.predicted)

    @property
    def predicted(self) -> np.ndarray:
        return self.pred["pred_step_s"]

    def operator_errors(self) -> dict[str, dict[str, float]]:
        """Per operator: MAPE over the steps that run it and the signed bias sum(pred)/sum(meas) - 1.
        ``head`` is predicted as LM head + per-step/per-sequence overhead (the CPU profile's overhead
        is its sampling fit); ``other`` is the step time outside the four operators (Python, loop)."""
        from blendsim.profiler.fit import mape

        c = self.pred
        pred = {
            "gemm": c["pred_gemm_s"],
            "decode_attn": c["pred_decode_attn_s"],
            "prefill_attn": c["pred_prefill_attn_s"],
            "head": c["pred_lm_head_s"] + c["pred_overhead_s"],
        }
        out = {}
        for op in OPERATORS:
            meas = self.measured[f"{op}_s"]
            mask = (pred[op] > 0) & np.isfinite(meas)
            if mask.any():
                out[op] = {
                    "mape": mape(meas[mask], pred[op][mask]),
                    "bias": float(pred[op][mask].sum() / meas[mask].sum() - 1.0),
                    "measured_s": float(meas[mask].sum()),
                    "predicted_s": float(pred[op][mask].sum()),
                }
        other = self.measured["step_s"] - sum(self.measured[f"{op}_s"] for op in OPERATORS)
        if np.isfinite(other).all():
            out["other"] = {"measured_s": float(other.sum()), "predicted_s": 0.0}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The simulator's result schema (measured), plus the replay's own fields."""
        from blendsim.profiler.fit import mape

        mk = self.measured_makespan_s
        s = self.sim
        return {
            "policy": self.policy,
            "engine": self.engine,
            "requests": s.requests,
            "total_tokens": self.tokens,
            "makespan_s": mk,
            "throughput_tok_s": self.tokens / mk if mk else 0.0,
            "steps": int(len(self.rows)),
            "preemptions": s.preemptions,
            "sharing": s.sharing,
            "optimal_sharing": s.optimal_sharing,
            "optimal_time_s": None,
            "fraction_of_optimal": None,
            "plan_s": s.plan_s,
            "sim_s": self.wall_s,
            "backend": "torch",
            "device": self.device,
            "clock": self.clock,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "simulated_steps": len(self.sim.steps["step"]),
            "simulated_makespan_s": self.simulated_makespan_s,
            "simulated_tok_s": self.tokens / self.simulated_makespan_s if self.simulated_makespan_s else 0.0,
            "step_mape": mape(self.measured["step_s"], self.predicted) if len(self.rows) else None,
            "step_mape_wall": mape(self.measured["wall_s"], self.predicted) if len(self.rows) else None,
            "operators": self.operator_errors(),
            "options": self.options,
        }

    def step_columns(self) -> dict[str, np.ndarray]:
        """Per replayed step: the simulator's record of it (``step_s`` measured, ``sim_step_s``
        simulated), the predictions (``pred_*``) and the measured split (``meas_*``)."""
        out = {
            k: np.asarray(v)[self.rows]
            for k, v in self.sim.steps.items()
            if k not in ("compute_s", "memory_s")
        }
        out["sim_step_s"] = out.pop("step_s")
        out["step_s"] = self.measured["step_s"]
        out.update(self.pred)
        out.update({f"meas_{k}": v for k, v in self.measured.items()})
        return out

    def write(self, out_dir: str | Path) -> list[Path]:
        """``<policy>_torch.json`` and ``_steps.parquet`` in the folder ``out_dir`` (made if missing)."""
        from blendsim.outputs import write_json
        from blendsim.sim.simulation.result import write_parquet

        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        paths = [d / f"{self.policy}_torch.json", d / f"{self.policy}_torch_steps.parquet"]
        write_json(paths[0], self.to_dict())
        write_parquet(paths[1], self.step_columns())
        return paths


def prepare_device(device: str, threads: int | None, profile: Profile) -> str:
    """Check the device (a CUDA request without a GPU is a UserError) and set CPU threads to
    ``threads`` or the profile's measured thread count (default 1)."""
    from blendsim.profiler.measure import check_device

    dev = check_device(device)
    if dev.type == "cpu":
        n = threads if threads is not None else int(profile.provenance.software.get("threads", "1") or 1)
        torch.set_num_threads(max(n, 1))
        from blendsim.profiler.measure import cpu_name

        return f"{cpu_name()}, {torch.get_num_threads()} thread(s)"
    return torch.cuda.get_device_name(dev)


def replay_steps(
    sim: SimResult,
    model: ModelSpec,
    profile: Profile,
    options: ReplayOptions | None = None,
    *,
    progress: bool = False,
    engine: str | None = None,
) -> ReplayResult:
    """Replay the selected steps of ``sim`` (simulated on the bound ``profile``) on torch and time
    each one (module docstring); ``engine`` replays them under another composition than simulated
    (a reference: an overlapped simulation's steps run serially)."""
    opts = options or ReplayOptions()
    engine = engine or sim.engine
    device = prepare_device(opts.device, opts.threads, profile)
    rows = select_rows(sim.steps, opts.max_steps, opts.select)
    shapes = [step_shape(sim.steps, int(r)) for r in rows]
    pred = predicted(sim, rows, profile)
    replayer = StepReplayer(model, shapes, opts.device, seed=opts.seed, clock=opts.clock)
    t0 = time.perf_counter()
    splits = [profile.steps.splits(s) for s in shapes]  # the steps the engine runs whole, run whole
    try:
        for shape, split in zip(shapes[: opts.warmup], splits, strict=False):
            replayer.run(shape, engine, split)
        t0 = time.perf_counter()
        measured, interrupted = _time_steps(replayer, shapes, engine, splits, progress)
    finally:
        replayer.close()
    done = len(measured["step_s"])
    thread_clock = replayer.use_cpu_clock and engine == "serial"  # overlap is only seen by the wall clock
    clock = "cuda-events" if replayer.cuda else ("thread-cpu" if thread_clock else "wall")
    dp = len(np.unique(sim.steps["replica"])) if len(rows) else 1
    info = {
        "max_steps": opts.max_steps,
        "select": opts.select,
        "dp": dp,
        "warmup": opts.warmup,
        "threads": torch.get_num_threads(),
        "profile": profile.name,
        "seed": opts.seed,
    }
    return ReplayResult(
        sim.policy,
        engine,
        device,
        sim,
        rows[:done],
        {k: v[:done] for k, v in pred.items()},
        {k: np.asarray(v, dtype=np.float64) for k, v in measured.items()},
        clock,
        time.perf_counter() - t0,
        interrupted,
        info,
    )


def _time_steps(
    replayer: StepReplayer, shapes: list[Any], engine: str, splits: list[bool], progress: bool
) -> tuple[dict[str, list[float]], bool]:
    """Run every shape once under ``engine`` (split into nano-batches where ``splits`` says); the
    measured times per step and whether Ctrl-C stopped it early (what was measured is kept)."""
    names = ("step_s", "wall_s", "cpu_s", *(f"{op}_s" for op in OPERATORS))
    measured: dict[str, list[float]] = {k: [] for k in names}
    bar = _bar(len(shapes), progress)
    try:
        for shape, split in zip(shapes, splits, strict=True):
            t = replayer.run(shape, engine, split)
            measured["step_s"].append(t.step_s)
            measured["wall_s"].append(t.wall_s)
            measured["cpu_s"].append(t.cpu_s)
            for op in OPERATORS:
                measured[f"{op}_s"].append(t.ops.get(op, math.nan))
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        return measured, True
    finally:
        if bar is not None:
            bar.close()
    return measured, False


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="replay", file=sys.stderr, mininterval=1.0)
