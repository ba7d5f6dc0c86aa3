"""The Trace: requests in arrival order, stored column-wise for speed at 400K requests.

Segments are kept in CSR form: request ``i`` has segments ``seg_ids[seg_offsets[i]:seg_offsets[i+1]]``
with lengths ``seg_lens[...]`` of the same slice. Positions (0..n-1) index requests everywhere in
blendsim; ``request_id`` is the user-visible id. A trace imported from a batch file also keeps each
request's ``custom_id`` (the batch line's own id, a string), in ``custom_id``; generated traces have none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.limits import INT32_MAX
from blendsim.traces.request import Request


@dataclass
class Trace:
    request_id: np.ndarray  # int64[n]
    source_codes: np.ndarray  # int32[n], index into ``sources``
    sources: list[str]
    seg_offsets: np.ndarray  # int64[n + 1]
    seg_ids: np.ndarray  # int64[total segments]
    seg_lens: np.ndarray  # int64[total segments]
    output_len: np.ndarray  # int64[n]
    metadata: dict[str, Any] = field(default_factory=dict)
    custom_id: np.ndarray | None = None  # object[n] of str: the batch file's ids, when imported from one

    def __post_init__(self) -> None:
        self.prompt_len = (
            np.add.reduceat(self.seg_lens, self.seg_offsets[:-1]).astype(np.int64)
            if len(self) and len(self.seg_lens)
            else np.zeros(len(self), dtype=np.int64)
        )

    def __len__(self) -> int:
        return int(self.request_id.shape[0])

    # ----------------------------------------------------------------- access
    def segments_of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.seg_offsets[i], self.seg_offsets[i + 1]
        return self.seg_ids[a:b], self.seg_lens[a:b]

    def request(self, i: int) -> Request:
        ids, lens = self.segments_of(i)
        return Request(
            request_id=int(self.request_id[i]),
            source=self.sources[int(self.source_codes[i])],
            segments=tuple(int(x) for x in ids),
            segment_lens=tuple(int(x) for x in lens),
            output_len=int(self.output_len[i]),
        )

    def __iter__(self) -> Iterator[Request]:
        return (self.request(i) for i in range(len(self)))

    # ----------------------------------------------------------------- sharing
    def saved_tokens(self, mask: np.ndarray | None = None) -> int:
        """Prompt tokens served from the prefix cache with an unbounded cache in DFS order.

        Every distinct segment is computed once; every other occurrence is saved. By the segment
        invariant (an id fixes its prefix), distinct segments are distinct ids.
        """
        if mask is None:
            ids, lens = self.seg_ids, self.seg_lens
        else:
            counts = np.diff(self.seg_offsets)
            seg_mask = np.repeat(mask, counts)
            ids, lens = self.seg_ids[seg_mask], self.seg_lens[seg_mask]
        _, first = np.unique(ids, return_index=True)
        return int(lens.sum() - lens[first].sum())

    def common_prefix_tokens(self, order: np.ndarray) -> np.ndarray:
        """int64[len(order)]: the prompt tokens request ``order[j]`` shares with ``order[j - 1]``
        (their common leading segments; 0 for the first). By the segment invariant two prompts share
        their segments through level ``l`` exactly when their ``l``-th segment ids are equal."""
        order = np.asarray(order, dtype=np.int64)
        out = np.zeros(len(order), dtype=np.int64)
        if len(order) < 2:
            return out
        counts = np.diff(self.seg_offsets)
        a, b = self.seg_offsets[order[:-1]], self.seg_offsets[order[1:]]
        depth = np.minimum(counts[order[:-1]], counts[order[1:]])
        shared = out[1:]
        alive = np.flatnonzero(depth > 0)
        level = 0
        while len(alive):
            alive = alive[self.seg_ids[a[alive] + level] == self.seg_ids[b[alive] + level]]
            shared[alive] += self.seg_lens[b[alive] + level]
            level += 1
            alive = alive[depth[alive] > level]
        return out

    def sharing(self, mask: np.ndarray | None = None) -> float:
        """s = GEMM tokens saved by prefix reuse / sum (p + d)."""
        p = self.prompt_len if mask is None else self.prompt_len[mask]
        d = self.output_len if mask is None else self.output_len[mask]
        total = int(p.sum() + d.sum())
        return self.saved_tokens(mask) / total if total else 0.0

    # ----------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise UserError if the trace is empty, its columns are inconsistent, a length is out of
        range (every prompt and output at least one token and within int32) or the segment invariant
        is broken. Messages name the first offending request."""
        n = len(self)
        if n == 0:
            raise UserError("it holds no requests (a trace needs at least one)")
        counts = np.diff(self.seg_offsets) if self.seg_offsets.shape == (n + 1,) else None
        if counts is None or self.seg_offsets[0] != 0 or self.seg_offsets[-1] != len(self.seg_ids):
            raise UserError("its segment offsets are malformed")
        if np.any(counts < 1):
            bad = int(self.request_id[np.argmax(counts < 1)])
            raise UserError(f"request {bad} has an empty prompt (no segments); every prompt needs a token")
        if len(self.seg_lens) != len(self.seg_ids):
            raise UserError("it has a different number of segment ids and segment lengths")
        for what, values, per_segment in (
            ("a segment of length", self.seg_lens, True),
            ("prompt length", self.prompt_len, False),
            ("output length", self.output_len, False),
        ):
            out = (values < 1) | (values > INT32_MAX)
            if np.any(out):
                i = int(np.argmax(out))
                row = int(np.searchsorted(self.seg_offsets, i, side="right") - 1) if per_segment else i
                raise UserError(
                    f"request {int(self.request_id[row])} has {what} {int(values[i])}; "
                    f"lengths must be in [1, {INT32_MAX}] (int32)"
                )
        if len(np.unique(self.request_id)) != n:
            raise UserError("its request ids are not unique")
        if self.custom_id is not None:
            if self.custom_id.shape != (n,):
                raise UserError("its custom ids must be one per request")
            if len(set(self.custom_id.tolist())) != n:
                raise UserError("its custom ids are not unique")
        # an id must always have the same length and the same predecessor
        order = np.argsort(self.seg_ids, kind="stable")
        sid = self.seg_ids[order]
        same = sid[1:] == sid[:-1]
        if np.any(same & (self.seg_lens[order][1:] != self.seg_lens[order][:-1])):
            raise UserError("a segment id appears with two different lengths")
        prev = np.full(len(self.seg_ids), -1, dtype=np.int64)
        starts = np.zeros(len(self.seg_ids), dtype=bool)
        starts[self.seg_offsets[:-1]] = True
        prev[~starts] = self.seg_ids[np.flatnonzero(~starts) - 1]
        if np.any(same & (prev[order][1:] != prev[order][:-1])):
            raise UserError("a segment id appears after two different prefixes")

    # ----------------------------------------------------------------- build
    @classmethod
    def from_requests(cls, requests: list[Request], metadata: dict[str, Any] | None = None) -> Trace:
        sources: list[str] = []
        code_of: dict[str, int] = {}
        codes = np.empty(len(requests), dtype=np.int32)
        for i, r in enumerate(requests):
            if r.source not in code_of:
                code_of[r.source] = len(sources)
                sources.append(r.source)
            codes[i] = code_of[r.source]
        counts = np.fromiter((len(r.segments) for r in requests), dtype=np.int64, count=len(requests))
        offsets = np.zeros(len(requests) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        ids = np.fromiter((s for r in requests for s in r.segments), dtype=np.int64, count=int(offsets[-1]))
        lens = np.fromiter(
            (s for r in requests for s in r.segment_lens), dtype=np.int64, count=int(offsets[-1])
        )
        return cls(
            request_id=np.fromiter((r.request_id for r in requests), dtype=np.int64, count=len(requests)),
            source_codes=codes,
            sources=sources,
            seg_offsets=offsets,
            seg_ids=ids,
            seg_lens=lens,
            output_len=np.fromiter((r.output_len for r in requests), dtype=np.int64, count=len(requests)),
            metadata=dict(metadata or {}),
        )

    def subset(self, positions: np.ndarray) -> Trace:
        """The requests at ``positions`` (in that order), metadata kept."""
        positions = np.asarray(positions, dtype=np.int64)
        counts = np.diff(self.seg_offsets)[positions]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        starts = self.seg_offsets[positions]
        gather = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return Trace(
            self.request_id[positions],
            self.source_codes[positions],
            list(self.sources),
            offsets,
            self.seg_ids[gather],
            self.seg_lens[gather],
            self.output_len[positions],
            dict(self.metadata),
            None if self.custom_id is None else self.custom_id[positions],
        )
