"""The overlapped steps a profile measures, and the interference model fitted to them.

The grid (:func:`overlap_steps`) covers where the policies run: GEMM tokens from 32 to 2,048 per
step (decode-only steps, chunked prefill beside decodes, a prefill-only step), decode KV from a few
thousand tokens to the tens of thousands a small CPU cache holds, prefill chunks with and without
cached context. Each step is replayed as two nano-batches (:mod:`blendsim.profiler.overlap_step`)
and timed by wall clock.

The fit keeps every parameter of the serial fit and chooses the three of the ``shared`` model
(:mod:`blendsim.profiler.interference`): the bandwidth the two sides reach together (``[1, 4]``),
the compute share a side loses to the other (``[0, 1]``) and the per-step cost of the hand-offs
(``>= 0``), by least squares on relative residuals ``predicted / measured - 1`` (soft-L1 loss:
a step stalled by another process is an outlier, not interference). The predictions go through
:class:`~blendsim.profiler.step_model.StepModel`, so the fitted numbers mean what the simulator uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.step_model import StepModel
from blendsim.profiler.step_params import StepParams

# (decode sequences, KV tokens each, prefill tokens, their context); a chunk is one sequence
QUICK_OVERLAP = (
    (32, 512, 0, 0), (32, 2048, 0, 0), (128, 128, 0, 0), (128, 512, 0, 0), (512, 64, 0, 0),
    (512, 128, 0, 0), (1536, 32, 0, 0), (16, 1024, 256, 512), (64, 512, 1024, 0), (8, 512, 512, 2048),
    (0, 0, 2048, 0),
)  # fmt: skip
FULL_OVERLAP = QUICK_OVERLAP + (
    (64, 1024, 0, 0), (256, 256, 0, 0), (1024, 64, 0, 0), (32, 256, 128, 0), (128, 256, 768, 1024),
    (4, 4096, 1536, 0), (0, 0, 512, 0),
)  # fmt: skip
BOUNDS = ((1.0, 0.0, 0.0), (4.0, 1.0, 0.5))  # bandwidth share, compute share, sync seconds


def overlap_steps(points: Sequence[tuple[int, int, int, int]]) -> list[BatchShape]:
    """The grid's steps: ``points`` as BatchShapes (a prefill is one causal chunk after its context)."""
    out = []
    for b, kv, q, ctx in points:
        pairs = q * ctx + q * (q + 1) / 2
        out.append(BatchShape(q, float(pairs), b, b * kv, 1 if q else 0))
    return out


def with_interference(params: StepParams, x: Sequence[float] | np.ndarray) -> StepParams:
    """``params`` with the shared model's (bandwidth share, compute share, sync seconds) ``x``."""
    return dataclasses.replace(
        params,
        interference="shared",
        overlap_bandwidth_share=float(x[0]),
        overlap_compute_share=float(x[1]),
        overlap_sync_s=float(x[2]),
    )


def predicted(
    params: StepParams, model: ModelSpec, hw: HardwareSpec, shapes: Sequence[BatchShape]
) -> np.ndarray:
    """Predicted times of ``shapes`` run as nano-batches, as the grid measures them (the engine may
    run some of them whole, where that is faster: ``StepModel.splits``)."""
    sm = StepModel(params, model, hw)
    return np.array([sm.split_time(s) + sm.step_time(s, "serial").overhead_s for s in shapes])


def fit_interference(
    points: Sequence[tuple[BatchShape, float]], params: StepParams, model: ModelSpec, hw: HardwareSpec
) -> StepParams:
    """``params`` (the serial fit) with the shared model fitted to measured overlapped ``points``
    (module docstring)."""
    shapes = [s for s, _ in points]
    measured = np.array([t for _, t in points])

    def residuals(x: np.ndarray) -> np.ndarray:
        res: np.ndarray = predicted(with_interference(params, x), model, hw, shapes) / measured - 1.0
        return res

    best = None
    for start in ((1.0, 0.0, 0.0), (1.5, 0.1, 1e-3), (2.5, 0.3, 1e-2)):  # a few starts: the max is kinked
        fit = least_squares(residuals, np.array(start), bounds=BOUNDS, loss="soft_l1", f_scale=0.1)
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    return with_interference(params, best.x)


def kappa_of(
    points: Sequence[tuple[BatchShape, float]], params: StepParams, model: ModelSpec, hw: HardwareSpec
) -> float:
    """The ``constant`` model's kappa these overlapped steps imply, for sensitivity studies: the
    median of ``(measured - overhead - max(C, M)) / min(C, M)``, clipped to [0, 1]."""
    sm = StepModel(params, model, hw)
    ks = []
    for shape, t in points:
        st = sm.step_time(shape, "serial")
        lo = min(st.compute_s, st.memory_s)
        if lo > 0:
            ks.append((t - st.overhead_s - max(st.compute_s, st.memory_s)) / lo)
    return float(np.clip(np.median(ks), 0.0, 1.0)) if ks else 1.0
