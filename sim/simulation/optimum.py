"""The references a run is measured against: the workload's step totals at the best sharing (what
the practical optimum composes) and the sharing an admission order reaches with an unbounded cache.

The practical optimum (paper §2.6) is ``Profile.optimal_time`` of :func:`optimal_totals`: prompt
tokens not served by the cache in DFS order with an unbounded cache, their causal attention pairs,
one decode per output token after the first (the prefill step samples the first), and the decode KV
reads sum_i (p + i). With N replicas it is the single-GPU optimum over N.
"""

from __future__ import annotations

import numpy as np

from blendsim.profiler.cost import BatchShape
from blendsim.traces.trace import Trace


def optimal_totals(trace: Trace) -> BatchShape:
    """The workload's step totals at the best sharing (module docstring)."""
    ids = trace.seg_ids
    first = np.zeros(len(ids), dtype=bool)
    first[np.unique(ids, return_index=True)[1]] = True
    hit = np.add.reduceat(np.where(first, 0, trace.seg_lens), trace.seg_offsets[:-1])
    p = trace.prompt_len.astype(np.float64)
    d = trace.output_len.astype(np.float64)
    q = p - hit
    pairs = float(np.sum(q * hit + q * (q + 1) / 2))
    return BatchShape(
        prefill_tokens=int(q.sum()),
        prefill_attn_pairs=pairs,
        decode_seqs=int((d - 1).sum()),
        decode_kv_tokens=int(np.sum((d - 1) * p + (d - 1) * d / 2)),
        prefill_seqs=len(trace),
    )


def block_saved_tokens(trace: Trace, order: np.ndarray, block_size: int) -> int:
    """Prompt tokens an unbounded cache with ``block_size`` blocks serves in ``order`` (positions):
    each request hits the longest prefix of its segment path some earlier request had, rounded
    down to whole blocks, never its last prompt token (as the engine; O(segments), vectorised)."""
    order = np.asarray(order, dtype=np.int64)
    if not len(order):
        return 0
    counts = np.diff(trace.seg_offsets)[order]
    row = np.repeat(np.arange(len(order)), counts)  # rank in ``order`` of each segment occurrence
    starts = np.cumsum(counts) - counts
    idx = np.repeat(trace.seg_offsets[order] - starts, counts) + np.arange(int(counts.sum()))
    ids, lens = trace.seg_ids[idx], trace.seg_lens[idx]
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    seen = row > row[first][inverse]  # an earlier request had it (hence its whole prefix)
    cached = np.add.reduceat(np.where(seen, lens, 0), starts)
    p = trace.prompt_len[order]
    return int(np.sum(np.minimum(cached, p - 1) // block_size * block_size))
