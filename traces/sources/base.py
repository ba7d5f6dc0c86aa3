"""What every source generator shares: the request block it returns, seeded streams, bounded draws.

A source generates ``n`` requests as a :class:`SourceBlock` in CSR form with *local* segment ids
(``0`` is always the source's system prompt). The mixer offsets local ids so that ids of different
sources never collide; the segment invariant (an id fixes its whole prefix) then holds trace-wide.

Prefix stability: ``generate(n + k, seed)`` starts with exactly the requests of ``generate(n, seed)``.
Every random quantity comes from its own stream (:func:`streams`) and is drawn i.i.d. in order, so
the mixer can read the achieved totals of any count from one long draw's prefix sums.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class SourceBlock:
    """``n`` requests of one source in generation order; ids local to the source, id 0 = system prompt."""

    output_len: np.ndarray  # int64[n]
    seg_offsets: np.ndarray  # int64[n + 1]
    seg_ids: np.ndarray  # int64[segments], local ids
    seg_lens: np.ndarray  # int64[segments]

    def __len__(self) -> int:
        return int(self.output_len.shape[0])

    @property
    def prompt_len(self) -> np.ndarray:
        return np.add.reduceat(self.seg_lens, self.seg_offsets[:-1]).astype(np.int64)

    @property
    def id_span(self) -> int:
        """One more than the largest local id: the block of global ids this source needs."""
        return int(self.seg_ids.max()) + 1 if len(self.seg_ids) else 0

    def saved_per_request(self) -> np.ndarray:
        """Prompt tokens of each request already computed by an earlier request (generation order).

        Summing the first ``k`` entries gives the saved tokens of the first ``k`` requests under an
        unbounded prefix cache, the same number :meth:`Trace.saved_tokens` computes.
        """
        _, first = np.unique(self.seg_ids, return_index=True)
        repeat = np.ones(len(self.seg_ids), dtype=bool)
        repeat[first] = False
        saved_lens = np.where(repeat, self.seg_lens, 0)
        return np.add.reduceat(saved_lens, self.seg_offsets[:-1]).astype(np.int64)

    def head(self, n: int) -> SourceBlock:
        """The first ``n`` requests."""
        return self.window(0, n)

    def window(self, offset: int, n: int) -> SourceBlock:
        """Requests ``offset .. offset + n - 1`` (ids unchanged, so the segment invariant still holds)."""
        a, b = int(self.seg_offsets[offset]), int(self.seg_offsets[offset + n])
        return SourceBlock(
            self.output_len[offset : offset + n],
            self.seg_offsets[offset : offset + n + 1] - a,
            self.seg_ids[a:b],
            self.seg_lens[a:b],
        )


class Source(ABC):
    """A workload source: a name, the paper's statistics it follows, and a prefix-stable generator."""

    name: str = ""
    kind: str = ""  # api, chat, benchmark, video, reasoning
    summary: str = ""
    # the paper's Table 4 values for Llama-3-8B on an A100 (BlendServe, arXiv 2411.16102)
    paper_density: float = 0.0
    paper_sharing: float | None = None

    @abstractmethod
    def generate(self, n: int, seed: int) -> SourceBlock:
        """``n`` requests; prefix-stable in ``n`` for a fixed ``seed``."""


def streams(seed: int, name: str, count: int) -> list[np.random.Generator]:
    """``count`` independent generators for source ``name`` under ``seed`` (stable across runs)."""
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])
    return [np.random.Generator(np.random.PCG64(child)) for child in seq.spawn(count)]


def _clipped_lognormal_mean(mu: float, sigma: float, lo: float, hi: float) -> float:
    """E[clip(X, lo, hi)] for X ~ LogNormal(mu, sigma)."""
    from scipy import special  # here, not at the top: the CLI imports sources to list them (0.5 s)

    a, b = (np.log(lo) - mu) / sigma, (np.log(hi) - mu) / sigma
    phi = special.ndtr
    body = np.exp(mu + sigma * sigma / 2) * (phi(b - sigma) - phi(a - sigma))
    return float(lo * phi(a) + hi * (1 - phi(b)) + body)


@lru_cache(maxsize=256)
def _mu_for_mean(mean: float, sigma: float, lo: float, hi: float) -> float:
    from scipy import optimize

    def gap(mu: float) -> float:
        return _clipped_lognormal_mean(mu, sigma, lo, hi) - mean

    return float(optimize.brentq(gap, np.log(lo) - 10 * sigma, np.log(hi) + 10 * sigma, xtol=1e-10))


def bounded_lognormal(z: np.ndarray, mean: float, sigma: float, lo: float, hi: float) -> np.ndarray:
    """Map standard normals ``z`` to a lognormal clipped to [lo, hi] whose clipped mean is ``mean``.

    Bounded on purpose (design.md, "Length tails"): the histograms the paper shows end at ``hi``.
    """
    if not lo < mean < hi:
        raise ValueError(f"mean {mean} outside ({lo}, {hi})")
    mu = _mu_for_mean(float(mean), float(sigma), float(lo), float(hi))
    return np.clip(np.exp(mu + sigma * z), lo, hi)


def to_tokens(x: np.ndarray, lo: int = 1) -> np.ndarray:
    """Round to whole tokens, at least ``lo``."""
    out: np.ndarray = np.maximum(np.rint(x), lo).astype(np.int64)
    return out


def single_turn_block(system_len: int, body_lens: np.ndarray, output_len: np.ndarray) -> SourceBlock:
    """Requests made of the source's system prompt (id 0) and a unique body (ids 1..n)."""
    n = len(body_lens)
    ids = np.empty(2 * n, dtype=np.int64)
    ids[0::2] = 0
    ids[1::2] = np.arange(1, n + 1, dtype=np.int64)
    lens = np.empty(2 * n, dtype=np.int64)
    lens[0::2] = system_len
    lens[1::2] = body_lens
    offsets = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    return SourceBlock(np.asarray(output_len, dtype=np.int64), offsets, ids, lens)


class SingleTurnSource(Source):
    """A source whose requests are a system prompt plus one unique body, with (p, d) drawn jointly.

    ``p`` (the whole prompt, system prompt included) and ``d`` are bounded lognormals with the
    given means; ``corr`` correlates their underlying normals (a Gaussian copula).
    """

    system_len: int = 8
    prompt_mean: float = 100.0
    prompt_sigma: float = 1.0
    prompt_max: float = 1000.0
    output_mean: float = 100.0
    output_sigma: float = 1.0
    output_max: float = 1000.0
    corr: float = 0.0

    def draw_lengths(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        gp, gd = streams(seed, self.name, 2)
        zp = gp.standard_normal(n)
        zd = self.corr * zp + np.sqrt(1 - self.corr**2) * gd.standard_normal(n)
        p = to_tokens(
            bounded_lognormal(zp, self.prompt_mean, self.prompt_sigma, self.system_len + 1, self.prompt_max),
            lo=self.system_len + 1,
        )
        d = to_tokens(bounded_lognormal(zd, self.output_mean, self.output_sigma, 1, self.output_max))
        return p, d

    def generate(self, n: int, seed: int) -> SourceBlock:
        p, d = self.draw_lengths(n, seed)
        return single_turn_block(self.system_len, p - self.system_len, d)
