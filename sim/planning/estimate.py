"""Output-length estimation for planning (paper §5; blendserve.md §5).

``oracle``: every request's true output length.

``sampled``: each request is sampled independently with probability ``sample_rate`` (the paper's
default 1 %); a sampled request is treated as already run during warm-up, so its true length is
known. Every other request gets the mean output length of the samples in the smallest subtree
containing it that has any: its own subtree, then its siblings', then each ancestor's in turn up to
the root. ``min_per_source`` (default 1, our addition) guarantees that many samples in every subtree
directly under the root (one per source: each source has its own system prompt), chosen at random
among its requests: an operator samples every task type at least once, and without it a 40K-request
preset with ~20 videos usually has no video sample at 1 %, so every video would be planned with the
API requests' mean length. Siblings come before the parent in the paper's wording; because the
request's own subtree holds no sample, "the samples of its siblings" and "the samples of its
parent's subtree" are the same set, so the rule is simply: the nearest ancestor-or-self subtree with
at least one sample. At least one request is always sampled (a tiny trace at 1 % could otherwise
have none), even with ``min_per_source=0``.

``exact_kinds`` (default ``("video",)``): requests whose source is of one of these kinds (looked up in
:data:`blendsim.traces.sources.SOURCES`; unknown source names match nothing) have their true length
known to the planner, as the paper notes that video generation has deterministic output lengths
(frames × tokens per frame). With ~20 videos in a 40K preset and CV ~1, a single sampled video
otherwise sets the estimate of all of them and can be off by 10× (4× in density, squared in memory).
:class:`EstimationConfig` names this choice ``video_lengths``: ``exact`` (the paper's) or
``sampled`` (videos are estimated like every other source).

``length_noise`` = σ injects multiplicative error ``exp(σ·z − σ²/2)`` (mean 1, so estimates stay
unbiased on average), ``z ~ N(0, 1)`` per request, into
every estimate that is not a known (sampled) length: all requests for ``oracle``. Estimates are
rounded and at least 1 token. Deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendsim.options import check_fields, finite_at_least, in_range, option
from blendsim.sim.planning.tree import ROOT, PrefixTree

ESTIMATORS = ("oracle", "sampled")
VIDEO_LENGTHS = ("exact", "sampled")


@dataclass(frozen=True)
class LengthEstimate:
    lengths: np.ndarray  # int64[n]: the output length planning uses, by request position
    sampled: np.ndarray  # bool[n]: requests sampled (run during warm-up)
    known: np.ndarray  # bool[n]: requests whose true length the planner used (sampled or exact kind)
    estimator: str

    def mean_abs_rel_error(self, true_len: np.ndarray) -> float:
        """Mean |estimate - true| / true over all requests (0 for a perfect oracle)."""
        t = np.asarray(true_len, dtype=np.float64)
        return float(np.mean(np.abs(self.lengths - t) / t)) if t.size else 0.0


@dataclass(frozen=True)
class EstimationConfig:
    """How planning estimates output lengths (module docstring); every field passes its option's
    check. The defaults are the paper's: 1 % sampled, no injected noise, exact video lengths."""

    estimator: str = option(
        "sampled",
        "output lengths planning uses: sampled (run a sample, subtree means) or oracle (the true ones)",
        choices=ESTIMATORS,
    )
    sample_rate: float = option(
        0.01,
        "sampled: fraction of requests run to learn lengths, in (0, 1]",
        check=in_range(0, 1, low_open=True),
    )
    length_noise: float = option(
        0.0,
        "sigma of multiplicative log-normal error exp(sigma z - sigma^2/2) on every estimate not known",
        check=finite_at_least(0),
        metavar="SIGMA",
    )
    video_lengths: str = option(
        "exact",
        "video outputs: exact (deterministic, known to the planner, as the paper) or sampled "
        "(estimated like every other source)",
        choices=VIDEO_LENGTHS,
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def exact_kinds(self) -> tuple[str, ...]:
        """Source kinds whose true lengths the planner knows."""
        return ("video",) if self.video_lengths == "exact" else ()

    def summary(self) -> dict[str, object]:
        """The estimation's settings as a plan's stats record them."""
        return {
            "estimator": self.estimator,
            "sample_rate": self.sample_rate if self.estimator == "sampled" else None,
            "length_noise": self.length_noise,
            "video_lengths": self.video_lengths,
        }


ORACLE = EstimationConfig(estimator="oracle")  # the true lengths: planning a run whose lengths are known


def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, tag]))


def sampled_means(tree: PrefixTree, true_len: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    """Per node: the mean sampled output length of the nearest ancestor-or-self with samples."""
    n_nodes, lo = tree.num_nodes, tree.leaf_offset
    cnt = np.zeros(n_nodes)
    tot = np.zeros(n_nodes)
    cnt[lo:] = sampled
    tot[lo:] = np.where(sampled, true_len, 0)
    for level in reversed(tree.levels[1:]):
        np.add.at(cnt, tree.parent[level], cnt[level])
        np.add.at(tot, tree.parent[level], tot[level])
    est = np.full(n_nodes, np.nan)
    est[ROOT] = tot[ROOT] / cnt[ROOT] if cnt[ROOT] > 0 else np.nan
    for level in tree.levels[1:]:
        own = tot[level] / np.maximum(cnt[level], 1)
        est[level] = np.where(cnt[level] > 0, own, est[tree.parent[level]])
    return est


def source_of_leaves(tree: PrefixTree) -> np.ndarray:
    """For every request, the root child (source subtree) it lies under."""
    top = np.arange(tree.num_nodes, dtype=np.int64)
    for level in tree.levels[2:]:
        top[level] = top[tree.parent[level]]
    return top[tree.leaf_offset :]


def top_up_sources(tree: PrefixTree, sampled: np.ndarray, minimum: int, rng: np.random.Generator) -> None:
    """Sample more requests, at random, in every root-child subtree with fewer than ``minimum``."""
    if minimum <= 0 or sampled.size == 0:
        return
    source = source_of_leaves(tree)
    have = np.bincount(source, weights=sampled, minlength=tree.num_nodes)
    for s in np.flatnonzero((have < minimum) & (np.bincount(source, minlength=tree.num_nodes) > 0)):
        free = np.flatnonzero((source == s) & ~sampled)
        extra = min(minimum - int(have[s]), len(free))
        sampled[rng.choice(free, size=extra, replace=False)] = True


def choose_sample(
    tree: PrefixTree, n: int, sample_rate: float, seed: int = 0, min_per_source: int = 1
) -> np.ndarray:
    """The requests the ``sampled`` estimator runs first (module docstring): each with probability
    ``sample_rate``, topped up to ``min_per_source`` per root subtree, at least one in all."""
    sampled = np.asarray(_rng(seed, 1).random(n) < sample_rate)
    top_up_sources(tree, sampled, min_per_source, _rng(seed, 4))
    if n and not sampled.any():
        sampled[int(_rng(seed, 2).integers(n))] = True
    return sampled


def exact_requests(
    sources: list[str] | None, codes: np.ndarray | None, kinds: tuple[str, ...], n: int
) -> np.ndarray:
    """Requests whose source kind is in ``kinds`` (their output length is deterministic)."""
    if not kinds or sources is None or codes is None:
        return np.zeros(n, dtype=bool)
    from blendsim.traces.sources import SOURCES

    exact = np.array([name in SOURCES and SOURCES[name].kind in kinds for name in sources], dtype=bool)
    return exact[np.asarray(codes, dtype=np.int64)] if len(exact) else np.zeros(n, dtype=bool)


def estimate_output_lengths(
    tree: PrefixTree,
    true_len: np.ndarray,
    config: EstimationConfig | None = None,
    *,
    seed: int = 0,
    min_per_source: int = 1,
    sources: list[str] | None = None,
    source_codes: np.ndarray | None = None,
) -> LengthEstimate:
    """Estimated output length of every request (see the module docstring for the rules)."""
    config = config or EstimationConfig()
    estimator, sample_rate, length_noise = config.estimator, config.sample_rate, config.length_noise
    true_len = np.asarray(true_len, dtype=np.int64)
    n = true_len.shape[0]
    if estimator == "oracle":
        sampled = np.zeros(n, dtype=bool)
        est = true_len.astype(np.float64)
        known = np.ones(n, dtype=bool)
        noisy = np.ones(n, dtype=bool)
    else:
        sampled = choose_sample(tree, n, sample_rate, seed, min_per_source)
        est = sampled_means(tree, true_len, sampled)[tree.leaf_offset :]
        known = sampled | exact_requests(sources, source_codes, config.exact_kinds, n)
        est = np.where(known, true_len, est)
        noisy = ~known
    if length_noise > 0:
        noise = np.exp(length_noise * _rng(seed, 3).standard_normal(n) - length_noise**2 / 2)
        est = np.where(noisy, est * noise, est)
    lengths = np.maximum(np.rint(est), 1).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    return LengthEstimate(lengths, sampled, known, estimator)
