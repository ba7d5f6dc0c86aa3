"""Fit the step model's parameters to microbenchmark timings (scipy least squares).

Each operator is fitted on its own, with relative residuals ``predicted / measured - 1`` so that small
and large shapes weigh the same, and reported as MAPE (mean absolute percentage error, a fraction):

gemm      ``max(c (n + n_half) / e_max, W / (BW w))`` over tokens n           (e_max, n_half, w)
          and the table of measured efficiencies at every profiled n (the time the model uses)
lm_head   the same curve times ``lm_head_time_scale`` over sequences          (scale)
decode    ``lat + kv_tokens x kv_bytes / (BW k) + D P / (P + P_half)``          (k, lat, D, P_half)
          with P the prefill tokens of the same step (D = 0 unless P varies over 3+ values)
prefill   ``lat + lat_chunk k + (pairs + x tokens) 4 L heads head_dim / (F a)`` (a, x, lat, lat_chunk)
sampling  ``t_step + t_seq x seqs``                                            (t_step, t_seq)
overlap   the ``shared`` interference model against overlapped steps (two nano-batches, GEMMs beside
          attention: :mod:`blendsim.profiler.overlap_fit`)   (bandwidth share, compute share, sync)

Predictions go through :class:`StepModel` itself, so the fitted numbers mean exactly what the
simulator uses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.step_model import StepModel
from blendsim.profiler.step_params import StepParams
from blendsim.profiler.work_counts import layer_gemm_flops

CPU_KAPPA = 1.0  # the constant model without overlapped measurements: operators one after the other


@dataclass
class Measurements:
    """Timings in seconds for the whole model (all layers)."""

    gemm: list[tuple[int, float]] = field(default_factory=list)  # (tokens, s)
    lm_head: list[tuple[int, float]] = field(default_factory=list)  # (seqs, s)
    # (batch, kv_len, prefill tokens of the same step, s): decode attention slows beside a large prefill
    decode: list[tuple[int, int, int, float]] = field(default_factory=list)
    prefill: list[tuple[int, int, int, float]] = field(default_factory=list)  # (q_len, ctx, chunks, s)
    sampling: list[tuple[int, float]] = field(default_factory=list)  # (seqs, s)
    overlapped: list[tuple[BatchShape, float]] = field(default_factory=list)  # (step, s), two nano-batches


@dataclass(frozen=True)
class FitResult:
    params: StepParams
    mape: dict[str, float]  # operator -> mean absolute percentage error (fraction)
    points: dict[str, int]  # operator -> number of measurements


def causal_pairs(q_len: float, ctx: float) -> float:
    """Query-key pairs of a causal chunk of q_len tokens after ctx cached ones (BatchShape's rule)."""
    return q_len * ctx + q_len * (q_len + 1) / 2


def prefill_work(q_len: float, ctx: float, chunks: float) -> tuple[float, float, float]:
    """(causal pairs, tokens, chunks) of ``chunks`` equal chunks of q_len tokens after ctx cached ones."""
    return chunks * causal_pairs(q_len, ctx), chunks * q_len, chunks


def _base(**kw: float) -> StepParams:
    values: dict[str, Any] = dict(
        gemm_eff_max=1.0,
        gemm_n_half=0.0,
        weight_bw_eff=1.0,
        kv_bw_eff=1.0,
        attn_eff=1.0,
        kappa=CPU_KAPPA,
        step_overhead_s=0.0,
        seq_overhead_s=0.0,
    )
    values.update(kw)
    return StepParams(**values)


def _best_fit(
    residuals: Callable[[np.ndarray], np.ndarray],
    starts: Sequence[Sequence[float]],
    lower: Sequence[float],
    upper: Sequence[float],
) -> np.ndarray:
    """Least squares from several starting points; the lowest cost wins."""
    best = None
    for x0 in starts:
        x0c = np.clip(np.asarray(x0, dtype=float), lower, upper)
        res = least_squares(residuals, x0c, bounds=(lower, upper), x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    return np.asarray(best.x)


def mape(measured: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error of ``predicted`` against ``measured``, as a fraction."""
    m = np.asarray(measured, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if m.shape != p.shape or m.size == 0:
        raise ValueError(f"mape needs two equal, non-empty series, got {m.shape} and {p.shape}")
    if np.any(m <= 0):
        raise ValueError("mape needs positive measured values")
    return float(np.mean(np.abs(p - m) / m))


def fit_gemm(points: list[tuple[int, float]], model: ModelSpec, hw: HardwareSpec) -> np.ndarray:
    """(e_max, n_half, weight_bw_eff) of the layer GEMMs.

    No separate latency is fitted: in the compute regime it is indistinguishable from ``n_half``
    (``lat + c (n + h) = c (n + h + lat / c)``) and in the weight regime from ``weight_bw_eff``.
    """
    n = np.array([p[0] for p in points], dtype=float)
    t = np.array([p[1] for p in points], dtype=float)

    def residuals(x: np.ndarray) -> np.ndarray:
        sm = StepModel(_base(gemm_eff_max=x[0], gemm_n_half=x[1], weight_bw_eff=x[2]), model, hw)
        result: np.ndarray = np.array([sm.gemm_time(k) for k in n]) / t - 1.0
        return result

    unit = StepModel(_base(), model, hw)
    e0 = float(np.max([unit.gemm_time(k) / s for k, s in zip(n, t, strict=True)]))
    w0 = float(np.max(unit.gemm_time(1) / t))
    starts = [(e0, h, w0) for h in (1.0, 16.0, 128.0, 1024.0)]
    return _best_fit(residuals, starts, [1e-4, 0.0, 1e-4], [2.0, 1e5, 2.0])


def fit_linear(x: Sequence[float], t: Sequence[float]) -> tuple[float, float]:
    """(intercept >= 0, slope >= 0) of t = a + b x, minimising relative error."""
    xa, ta = np.asarray(x, dtype=float), np.asarray(t, dtype=float)
    slope0 = float(np.median(ta / np.maximum(xa, 1e-30)))

    def residuals(v: np.ndarray) -> np.ndarray:
        result: np.ndarray = (v[0] + v[1] * xa) / ta - 1.0
        return result

    scale = [float(np.min(ta)), slope0]
    res = least_squares(
        residuals,
        [scale[0] * 0.1, slope0],
        bounds=([0.0, 0.0], [np.inf, np.inf]),
        x_scale=[max(s, 1e-30) for s in scale],
    )
    return float(res.x[0]), float(res.x[1])


def fit_nonneg(columns: Sequence[Sequence[float]], t: Sequence[float]) -> np.ndarray:
    """Non-negative coefficients x of t = sum_j x_j columns_j, minimising relative error (NNLS on rows
    divided by t; columns scaled to unit size first so the solver is well conditioned)."""
    a = np.asarray(columns, dtype=float).T / np.asarray(t, dtype=float)[:, None]
    scale = np.maximum(np.abs(a).max(axis=0), 1e-300)
    x, _ = nnls(a / scale, np.ones(len(t)))
    return np.asarray(x / scale)


def fit_decode(
    points: list[tuple[int, int, int, float]], model: ModelSpec, hw: HardwareSpec, lat0: float, slope0: float
) -> tuple[float, float, float, float]:
    """(latency, 1 / kv_bw_eff, extra beside prefill D, P_half) of decode attention:
    ``lat + kv_time / kv_bw_eff + D P / (P + P_half)`` with P the step's prefill tokens (step_model
    docstring). Starts from the plain linear fit (lat0, slope0) and several P_half."""
    b, kv, p, t = (np.array(c, dtype=float) for c in zip(*points, strict=True))

    def residuals(x: np.ndarray) -> np.ndarray:
        sm = StepModel(
            _base(
                kv_bw_eff=1.0 / x[1],
                decode_attn_latency_s=x[0],
                decode_prefill_s=x[2],
                decode_prefill_half=x[3],
            ),
            model,
            hw,
        )
        result: np.ndarray = (
            np.array([sm.decode_attn_time(k, q) for k, q in zip(b * kv, p, strict=True)]) / t - 1.0
        )
        return result

    top = float(np.max(t))
    starts = [(lat0, slope0, float(np.median(t)), h) for h in (16.0, 128.0, 1024.0, 8192.0)]
    x = _best_fit(residuals, starts, [0.0, 0.5, 0.0, 1.0], [top, 1e4, top, 1e6])  # kv_bw_eff <= 2
    return float(x[0]), float(x[1]), float(x[2]), float(x[3])


def fit_prefill(
    points: list[tuple[int, int, int, float]], model: ModelSpec, hw: HardwareSpec
) -> tuple[float, float, float, float]:
    """(attn_eff, extra pairs per token, latency per step, latency per chunk) of prefill attention.

    The extra pairs are the diagonal tiles of a blocked kernel (step_model docstring); a grid with a
    single context per query length cannot tell them from the pairs, so the grid mixes contexts."""
    unit = StepModel(_base(), model, hw).prefill_attn_time(1.0)  # s per pair at peak
    work = [prefill_work(q, c, k) for q, c, k, _ in points]
    cols = [
        [1.0] * len(work),
        [k for *_, k in work],
        [p * unit for p, _, _ in work],
        [n * unit for _, n, _ in work],
    ]
    lat, lat_chunk, slope, tok = (float(v) for v in fit_nonneg(cols, [s for *_, s in points]))
    slope = max(slope, 1e-12)
    return min(1.0 / slope, 2.0), tok / slope, lat, lat_chunk


def gemm_table(
    points: list[tuple[int, float]], model: ModelSpec, hw: HardwareSpec
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(tokens, efficiency) of the measured layer GEMMs, one entry per token count (median time)."""
    by_n: dict[int, list[float]] = {}
    for n, t in points:
        by_n.setdefault(int(n), []).append(t)
    ns = sorted(by_n)
    effs = [min(layer_gemm_flops(model, n) / (float(np.median(by_n[n])) * hw.peak_flops), 2.0) for n in ns]
    return tuple(float(n) for n in ns), tuple(effs)


def fit_profile(meas: Measurements, model: ModelSpec, hw: HardwareSpec) -> FitResult:
    """Fit every operator measured; the GEMM, decode and prefill fits need at least 2 points each."""
    for name in ("gemm", "decode", "prefill"):
        if len(getattr(meas, name)) < 2:
            raise ValueError(f"need at least 2 {name} measurements to fit, got {len(getattr(meas, name))}")
    e_max, n_half, w_eff = (float(v) for v in fit_gemm(meas.gemm, model, hw))
    gemm_p = _base(gemm_eff_max=e_max, gemm_n_half=n_half, weight_bw_eff=w_eff)
    unit = StepModel(gemm_p, model, hw)
    lm_scale = 1.0
    if meas.lm_head:
        lm_scale = math.exp(float(np.mean([math.log(s / unit.lm_head_time(k)) for k, s in meas.lm_head])))

    kv_unit = StepModel(_base(), model, hw)  # at efficiency 1: time per KV token and per pair at peak
    kv_x = [kv_unit.decode_attn_time(b * kv) for b, kv, *_ in meas.decode]
    dec_lat, dec_slope = fit_linear(kv_x, [s for *_, s in meas.decode])
    dec_mix = dec_half = 0.0
    if len({p for _, _, p, _ in meas.decode}) >= 3:
        dec_lat, dec_slope, dec_mix, dec_half = fit_decode(meas.decode, model, hw, dec_lat, dec_slope)
    attn_eff, extra_pairs, pre_lat, pre_chunk = fit_prefill(meas.prefill, model, hw)
    table_n, table_e = gemm_table(meas.gemm, model, hw)
    t_step = t_seq = 0.0
    if len(meas.sampling) >= 2:
        t_step, t_seq = fit_linear([k for k, _ in meas.sampling], [s for _, s in meas.sampling])

    params = StepParams(
        gemm_eff_max=e_max,
        gemm_n_half=n_half,
        weight_bw_eff=w_eff,
        kv_bw_eff=1.0 / dec_slope,
        attn_eff=attn_eff,
        kappa=CPU_KAPPA,
        step_overhead_s=t_step,
        seq_overhead_s=t_seq,
        decode_attn_latency_s=dec_lat,
        decode_prefill_s=dec_mix,
        decode_prefill_half=dec_half,
        prefill_attn_latency_s=pre_lat,
        lm_head_time_scale=lm_scale,
        prefill_attn_extra_pairs=extra_pairs,
        prefill_chunk_latency_s=pre_chunk,
        gemm_table_tokens=table_n,
        gemm_table_eff=table_e,
    )
    if len(meas.overlapped) >= 3:
        from blendsim.profiler.overlap_fit import fit_interference, kappa_of

        params = fit_interference(meas.overlapped, params, model, hw)
        params = dataclasses.replace(params, kappa=kappa_of(meas.overlapped, params, model, hw))
    return FitResult(params, errors(meas, params, model, hw), points_of(meas))


def errors(meas: Measurements, params: StepParams, model: ModelSpec, hw: HardwareSpec) -> dict[str, float]:
    """MAPE of each measured operator under ``params``."""
    sm = StepModel(params, model, hw)
    out = {
        "gemm": mape([s for _, s in meas.gemm], [sm.gemm_time(n) for n, _ in meas.gemm]),
        "decode_attention": mape(
            [s for *_, s in meas.decode], [sm.decode_attn_time(b * kv, p) for b, kv, p, _ in meas.decode]
        ),
        "prefill_attention": mape(
            [s for *_, s in meas.prefill],
            [sm.prefill_attn_time(*prefill_work(q, c, k)) for q, c, k, _ in meas.prefill],
        ),
    }
    if meas.lm_head:
        out["lm_head"] = mape([s for _, s in meas.lm_head], [sm.lm_head_time(k) for k, _ in meas.lm_head])
    if len(meas.sampling) >= 2:
        out["sampling"] = mape(
            [s for _, s in meas.sampling],
            [params.step_overhead_s + params.seq_overhead_s * k for k, _ in meas.sampling],
        )
    if meas.overlapped:
        out["overlap"] = mape(
            [t for _, t in meas.overlapped], [sm.step_time(s, "overlap").total_s for s, _ in meas.overlapped]
        )
    return out


def points_of(meas: Measurements) -> dict[str, int]:
    return {
        "gemm": len(meas.gemm),
        "lm_head": len(meas.lm_head),
        "decode_attention": len(meas.decode),
        "prefill_attention": len(meas.prefill),
        "sampling": len(meas.sampling),
        "overlap": len(meas.overlapped),
    }
