"""Prefix sums of one source's long draw: achieved totals of any request count in O(1).

Sources are prefix-stable (``generate(n)`` is the head of ``generate(n + k)``), so the trace built
from the first ``n_i`` requests of every source has exactly the totals read here. The mixer solves
and refines request counts on these exact totals, never on estimates of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec
from blendsim.traces.sources.base import Source, SourceBlock


def density_factor(model: ModelSpec, gpu: HardwareSpec) -> float:
    """(2P/F) / (kv_bytes/BW): density = factor x (tokens - saved) / (sum p d + d^2/2)."""
    return (2.0 * model.params / gpu.peak_flops) / (model.kv_bytes_per_token / gpu.mem_bandwidth)


@dataclass
class SourceStream:
    """One source's draw under one seed, grown on demand up to ``cap`` requests."""

    source: Source
    seed: int
    cap: int
    block: SourceBlock = field(init=False)
    tokens: np.ndarray = field(init=False)  # tokens[k] = sum (p + d) of the first k requests
    saved: np.ndarray = field(init=False)  # saved prompt tokens of the first k requests
    mem: np.ndarray = field(init=False)  # sum (p d + d^2 / 2) of the first k requests

    def __post_init__(self) -> None:
        self._draw(min(self.cap, 20_000))

    def _draw(self, n: int) -> None:
        self.block = self.source.generate(n, self.seed)
        p = self.block.prompt_len.astype(np.float64)
        d = self.block.output_len.astype(np.float64)
        self.tokens = np.concatenate([[0.0], np.cumsum(p + d)])
        self.saved = np.concatenate([[0.0], np.cumsum(self.block.saved_per_request())])
        self.mem = np.concatenate([[0.0], np.cumsum(p * d + 0.5 * d * d)])

    def __len__(self) -> int:
        return len(self.block)

    def ensure(self, n: int) -> None:
        """Make the first ``n`` requests available (prefix stability keeps earlier ones unchanged)."""
        n = min(n, self.cap)
        if n > len(self):
            self._draw(min(self.cap, max(n, 2 * len(self))))

    def means(self) -> np.ndarray:
        """Per-request (tokens, saved, mem) over the whole current draw."""
        n = len(self)
        return np.array([self.tokens[n], self.saved[n], self.mem[n]]) / max(n, 1)

    def totals(self, n: int) -> np.ndarray:
        """(tokens, saved, mem) of the first ``n`` requests."""
        self.ensure(n)
        return np.array([self.tokens[n], self.saved[n], self.mem[n]])

    def window_totals(self, offset: int, n: int) -> np.ndarray:
        """Exact (tokens, saved, mem) of requests ``offset .. offset + n - 1`` taken on their own."""
        if offset == 0:
            return self.totals(n)
        self.ensure(offset + n)
        a, b = offset, offset + n
        saved = float(self.block.window(a, n).saved_per_request().sum())
        return np.array([self.tokens[b] - self.tokens[a], saved, self.mem[b] - self.mem[a]])

    def slopes(self, n: int) -> np.ndarray:
        """Marginal (tokens, saved, mem) per extra request around ``n`` (a secant over a window)."""
        w = max(50, n // 10)
        lo, hi = max(0, n - w), min(n + w, self.cap)
        self.ensure(hi)
        out: np.ndarray = (
            np.array([self.tokens[hi], self.saved[hi], self.mem[hi]])
            - np.array([self.tokens[lo], self.saved[lo], self.mem[lo]])
        ) / max(1, hi - lo)
        return out


def achieved(
    streams: list[SourceStream], counts: np.ndarray, factor: float, offsets: np.ndarray | None = None
) -> tuple[float, float]:
    """Exact (density, sharing) of the trace made of ``counts[i]`` requests of each stream (from
    ``offsets[i]``)."""
    offsets = np.zeros(len(streams), dtype=np.int64) if offsets is None else offsets
    tokens, saved, mem = np.sum(
        [s.window_totals(int(o), int(n)) for s, o, n in zip(streams, offsets, counts, strict=True)], axis=0
    )
    return factor * (tokens - saved) / mem, saved / tokens
