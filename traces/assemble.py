"""Assemble source blocks into a Trace in arrival order, with trace-wide segment ids.

Each source's local ids are shifted into their own block of global ids (one counter per trace
build), so ids of different sources never collide and the segment invariant holds trace-wide.
Arrival order: ``batched`` = each source's requests as one batch in mix order, shuffled within the
source; ``interleaved`` = all requests shuffled together. request_id = arrival position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blendsim.traces.sources.base import SourceBlock
from blendsim.traces.trace import Trace


def _concat(
    blocks: Sequence[SourceBlock],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    offsets, ids, lens, outs, codes = [np.zeros(1, dtype=np.int64)], [], [], [], []
    seg_base, id_base = 0, 0
    for code, b in enumerate(blocks):
        offsets.append(b.seg_offsets[1:] + seg_base)
        ids.append(b.seg_ids + id_base)
        lens.append(b.seg_lens)
        outs.append(b.output_len)
        codes.append(np.full(len(b), code, dtype=np.int32))
        seg_base += int(b.seg_offsets[-1])
        id_base += b.id_span
    return (
        np.concatenate(offsets),
        np.concatenate(ids),
        np.concatenate(lens),
        np.concatenate(outs),
        np.concatenate(codes),
    )


def arrival_order(sizes: Sequence[int], arrival: str, rng: np.random.Generator) -> np.ndarray:
    """Positions (into the concatenated blocks) in arrival order."""
    total = int(sum(sizes))
    if arrival == "interleaved":
        return rng.permutation(total)
    starts = np.cumsum([0, *sizes])[:-1]
    return (
        np.concatenate([start + rng.permutation(n) for start, n in zip(starts, sizes, strict=True)])
        if sizes
        else np.zeros(0, dtype=np.int64)
    )


def assemble(
    blocks: Sequence[SourceBlock], names: Sequence[str], arrival: str, rng: np.random.Generator
) -> Trace:
    offsets, ids, lens, outs, codes = _concat(blocks)
    n = len(outs)
    whole = Trace(np.arange(n, dtype=np.int64), codes, list(names), offsets, ids, lens, outs)
    ordered = whole.subset(arrival_order([len(b) for b in blocks], arrival, rng))
    ordered.request_id = np.arange(n, dtype=np.int64)
    return ordered
