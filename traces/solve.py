"""Joint solve for request counts that hit a target density and sharing (blendserve.md §6.4).

For counts ``n`` the trace's totals are sums of each source's prefix totals (tokens, saved, mem), so

    sum_i tok_i(n_i) - sav_i(n_i) - (t / k) mem_i(n_i) = 0     # density = t
    sum_i sav_i(n_i) - s tok_i(n_i)                    = 0     # sharing = s
    sum_i n_i                                          = N

Each total is linearised around the current counts (its secant slope there) and the affine system is
solved with bounds 1 <= n_i <= N (scipy ``lsq_linear``); repeating this is Newton's method on the
exact totals, which handles MMLU's sharing growing with its request count. Then the smallest source
(few, heavy requests such as videos) is fixed at each integer near the solution, the others are
re-solved and rounded, and the candidate whose *measured* density and sharing are closest wins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blendsim.errors import UserError
from blendsim.traces.streams import SourceStream, achieved

DENSITY_TOL = 0.03  # relative (issue 3)
SHARING_TOL = 0.02  # absolute (issue 3)


def error(density: float, sharing: float, target_density: float, target_sharing: float) -> float:
    """Distance to the target in units of the tolerance: <= 1 means accepted."""
    return max(abs(density / target_density - 1) / DENSITY_TOL, abs(sharing - target_sharing) / SHARING_TOL)


def _system(
    tot: np.ndarray,
    slope: np.ndarray,
    n: np.ndarray,
    total: float,
    density: float,
    sharing: float,
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (density, sharing, count) of the totals linearised at ``n``, in units of the tolerance."""
    w_density = np.array([1.0, -1.0, -density / factor])
    w_sharing = np.array([-sharing, 1.0, 0.0])
    rows = np.array([slope @ w_density, slope @ w_sharing, np.ones(len(n))])
    rhs = -np.array(
        [
            (tot @ w_density).sum() - (slope @ w_density) @ n,
            (tot @ w_sharing).sum() - (slope @ w_sharing) @ n,
            -total,
        ]
    )
    computed = max(1.0, float(tot[:, 0].sum() - tot[:, 1].sum()))
    scale = np.array(
        [1.0 / (computed * DENSITY_TOL), 1.0 / (max(1.0, float(tot[:, 0].sum())) * SHARING_TOL), 1e3]
    )  # the count is a hard constraint
    return rows * scale[:, None], rhs * scale


def _bounded_lstsq(a: np.ndarray, b: np.ndarray, upper: float) -> np.ndarray:
    x: np.ndarray = np.linalg.lstsq(a, b, rcond=None)[0]
    if x.min() >= 1.0 and x.max() <= upper:
        return x
    from scipy.optimize import lsq_linear  # here: scipy takes 0.7 s to import, the CLI's help needs none

    bounded: np.ndarray = lsq_linear(a, b, bounds=(1.0, max(upper, 1.0 + 1e-9))).x
    return bounded


def _newton(
    streams: Sequence[SourceStream],
    n0: np.ndarray,
    free: np.ndarray,
    total: float,
    density: float,
    sharing: float,
    factor: float,
    iterations: int = 6,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Counts (real) solving the linearised equations, only ``free`` entries moving.

    Fixed entries contribute their exact totals (from ``offsets``, for a window of the draw).
    """
    n = n0.astype(np.float64).copy()
    offsets = np.zeros(len(n), dtype=np.int64) if offsets is None else offsets
    for _ in range(iterations):
        at = [max(1, int(round(x))) for x in n]
        tot = np.array([s.window_totals(int(o), m) for s, o, m in zip(streams, offsets, at, strict=True)])
        slope = np.array([s.slopes(m) for s, m in zip(streams, at, strict=True)])
        a, b = _system(tot, slope, n, total, density, sharing, factor)
        b = b - a[:, ~free] @ n[~free]
        sol = _bounded_lstsq(a[:, free], b, total)
        step = np.abs(sol - n[free]).max()
        n[free] = sol
        if step < 0.5:
            break
    return n


def _mean_solve(
    streams: Sequence[SourceStream], total: int, density: float, sharing: float, factor: float
) -> np.ndarray:
    """The paper's solve (§6.4) with per-request means: the starting point of the integer search."""
    means = np.array([s.means() for s in streams])
    a, b = _system(means * 0, means, np.zeros(len(streams)), total, density, sharing, factor)
    return _bounded_lstsq(a, b, total)


def _round(n: np.ndarray, total: int, fixed: np.ndarray) -> np.ndarray:
    """Integer counts >= 1 summing to ``total``; ``fixed`` entries are already integers."""
    out = np.maximum(1, np.rint(n)).astype(np.int64)
    free = np.flatnonzero(~fixed)
    out[free[np.argmax(out[free])]] += total - out.sum()
    result: np.ndarray = out
    return result


Solution = tuple[np.ndarray, np.ndarray, float, float, float]  # counts, offsets, density, sharing, error


def _evaluate(
    streams: Sequence[SourceStream],
    counts: np.ndarray,
    offsets: np.ndarray,
    factor: float,
    density: float,
    sharing: float,
) -> Solution:
    rho, s = achieved(list(streams), counts, factor, offsets)
    return counts, offsets, rho, s, error(rho, s, density, sharing)


def _best_windows(
    stream: SourceStream,
    count: int,
    others: np.ndarray,
    density: float,
    sharing: float,
    factor: float,
    keep: int,
) -> np.ndarray:
    """Offsets of the ``keep`` windows of ``count`` requests that best complete the other sources' totals.

    ``others`` = (tokens, saved, mem) of the other sources. Window saved tokens are approximated by
    prefix differences here; candidates are re-solved and measured exactly afterwards.
    """
    stream.ensure(count + 512)
    last = max(1, min(512, len(stream) - count + 1))
    o = np.arange(last)
    tok = stream.tokens[o + count] - stream.tokens[o]
    sav = stream.saved[o + count] - stream.saved[o]
    mem = stream.mem[o + count] - stream.mem[o]
    tok, sav, mem = tok + others[0], sav + others[1], mem + others[2]
    err = np.maximum(
        np.abs(factor * (tok - sav) / mem / density - 1) / DENSITY_TOL,
        np.abs(sav / tok - sharing) / SHARING_TOL,
    )
    return o[np.argsort(err, kind="stable")[:keep]]


def solve_counts(
    streams: Sequence[SourceStream],
    total: int,
    density: float,
    sharing: float,
    factor: float,
    max_candidates: int = 400,
    good_enough: float = 0.34,
) -> Solution:
    """Best integer counts found: (counts, offsets, achieved density, achieved sharing, error).

    The source with the fewest requests (videos: a few heavy requests make its totals lumpy) is
    scanned over integers near the mean-based estimate, nearest first; the others are solved by
    Newton on their exact totals for each candidate. If that is not within a third of the tolerance,
    the draw is refined: other windows of the small source's draw (which videos are taken) are tried.
    """
    k = len(streams)
    zero = np.zeros(k, dtype=np.int64)
    if k == 1:
        return _evaluate(streams, np.array([total], dtype=np.int64), zero, factor, density, sharing)
    start = _mean_solve(streams, total, density, sharing, factor)
    small = int(np.argmin(start))
    centre = float(start[small])
    upper = min(total - (k - 1), max(3, int(3 * centre) + 3))
    candidates = sorted(range(1, upper + 1), key=lambda c: abs(c - centre))[:max_candidates]
    free = np.ones(k, dtype=bool)
    free[small] = False
    best: Solution | None = None
    for c in candidates:
        trial = start.copy()
        trial[small] = c
        counts = _round(_newton(streams, trial, free, total, density, sharing, factor), total, ~free)
        if counts.min() < 1:
            continue
        found = _evaluate(streams, counts, zero, factor, density, sharing)
        if best is None or found[4] < best[4]:
            best = found
        if found[4] < 0.1:
            break
    if best is None:
        raise UserError(f"cannot split {total} requests over {k} sources with at least one request each")
    if best[4] <= good_enough:
        return best
    for c in candidates[:6]:
        trial = start.copy()
        trial[small] = c
        counts = _round(_newton(streams, trial, free, total, density, sharing, factor), total, ~free)
        others = np.sum(
            [s.totals(int(n)) for i, (s, n) in enumerate(zip(streams, counts, strict=True)) if i != small],
            axis=0,
        )
        for o in _best_windows(streams[small], c, others, density, sharing, factor, keep=4):
            offsets = zero.copy()
            offsets[small] = o
            counts = _round(
                _newton(streams, trial, free, total, density, sharing, factor, offsets=offsets), total, ~free
            )
            if counts.min() < 1:
                continue
            found = _evaluate(streams, counts, offsets, factor, density, sharing)
            if found[4] < best[4]:
                best = found
            if best[4] <= good_enough:
                return best
    return best


def feasible_band(
    streams: Sequence[SourceStream], sharing: float, factor: float, reference: int
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Like :func:`feasible_ranges`, with the density range over the whole sharing tolerance band."""
    share_range, _ = feasible_ranges(streams, sharing, factor, reference)
    lo, hi = max(sharing - SHARING_TOL, share_range[0]), min(sharing + SHARING_TOL, share_range[1])
    ranges = (
        [feasible_ranges(streams, float(x), factor, reference)[1] for x in np.linspace(lo, hi, 9)]
        if lo <= hi
        else []
    )
    found = [r for r in ranges if r is not None]
    return share_range, ((min(r[0] for r in found), max(r[1] for r in found)) if found else None)


def feasible_ranges(
    streams: Sequence[SourceStream], sharing: float, factor: float, reference: int
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Sharing range of the mix, and its density range at ``sharing`` (None if that sharing is out of reach).

    Uses each source's per-request averages over its first ``reference`` requests; mixes are
    convex combinations, so the extremes lie at single sources or at pairs balancing the sharing.
    """
    avg = np.array([s.totals(min(reference, s.cap)) / min(reference, s.cap) for s in streams])
    tok, sav, mem = avg[:, 0], avg[:, 1], avg[:, 2]
    shares = sav / tok
    h = sav - sharing * tok
    rhos: list[float] = []
    for i in range(len(streams)):
        if abs(h[i]) <= 1e-9 * tok[i]:
            rhos.append(factor * (tok[i] - sav[i]) / mem[i])
        for j in range(i + 1, len(streams)):
            if h[i] * h[j] < 0:
                wi, wj = -h[j], h[i]  # n_i / n_j = -h_j / h_i balances the sharing
                rhos.append(
                    factor * (wi * (tok[i] - sav[i]) + wj * (tok[j] - sav[j])) / (wi * mem[i] + wj * mem[j])
                )
    share_range = (float(shares.min()), float(shares.max()))
    return share_range, ((min(rhos), max(rhos)) if rhos else None)
