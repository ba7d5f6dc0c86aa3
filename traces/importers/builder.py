"""Prompt segments from chained block hashes, and the Trace an importer builds record by record.

A real prompt's prefix structure is what a paged prefix cache sees: fixed-size token blocks, each
named by a hash chained over every block before it, so equal hashes mean equal prefixes (vLLM's
prefix cache, Mooncake's and Bailian's ``hash_ids``). An imported request's segments are exactly
those blocks: block ``k`` is a segment of the block's length whose id is
``H(id of block k-1, what identifies block k)``, the last, partial block included. Chaining keeps the
trace's segment invariant (an id fixes its whole prefix) whatever the file's own ids are, and a
block's key carries its length, so a partial block is shared only with an equal one.

Ids are 64-bit BLAKE2b digests while reading (no table of seen blocks), renumbered densely in order
of first appearance when the trace is built. Length-only formats give each request one segment of
its own. Memory: a few machine words per block and per request (``array``), nothing per line read.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.traces.trace import Trace

_SEED = b"blendsim-block"


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def token_blocks(tokens: Sequence[int] | np.ndarray, block_size: int) -> tuple[list[int], list[int]]:
    """(chained ids, lengths) of the blocks of a prompt's token ids: the last block may be partial."""
    arr = np.asarray(tokens, dtype=np.int64)
    ids, lens = [], []
    prev = _SEED
    for start in range(0, len(arr), block_size):
        chunk = arr[start : start + block_size]
        prev = hashlib.blake2b(prev + chunk.tobytes(), digest_size=8).digest()
        ids.append(int.from_bytes(prev, "little", signed=True))
        lens.append(len(chunk))
    return ids, lens


def hash_id_blocks(
    hash_ids: Sequence[int], input_length: int, block_size: int
) -> tuple[list[int], list[int]]:
    """(chained ids, lengths) of a prompt given by per-block ``hash_ids`` (Mooncake, Bailian): one
    block per id, the last one holding what is left of ``input_length``. The caller checks that
    ``len(hash_ids) == ceil(input_length / block_size)``."""
    ids, lens = [], []
    prev = _SEED
    for k, hid in enumerate(hash_ids):
        length = min(block_size, input_length - k * block_size)
        prev = hashlib.blake2b(
            prev + int(hid).to_bytes(16, "little", signed=True) + length.to_bytes(8, "little"), digest_size=8
        ).digest()
        ids.append(int.from_bytes(prev, "little", signed=True))
        lens.append(length)
    return ids, lens


class TraceBuilder:
    """Accumulates imported requests (in file order) and builds the Trace.

    ``add`` takes a request's segment ids (any 64-bit ints honouring the segment invariant, such as
    the chained ids above; None: one segment of the request's own) and lengths; ``build`` renumbers
    the ids densely and checks the result (:meth:`Trace.validate`).
    """

    def __init__(self, source: str, with_custom_ids: bool = False) -> None:
        self.source = source
        self._ids = array("q")
        self._lens = array("q")
        self._counts = array("q")
        self._outputs = array("q")
        self._custom: list[str] | None = [] if with_custom_ids else None

    def __len__(self) -> int:
        return len(self._outputs)

    def add(
        self,
        seg_lens: Sequence[int],
        output_len: int,
        seg_ids: Sequence[int] | None = None,
        custom_id: str | None = None,
    ) -> None:
        if seg_ids is None:  # a segment of its own: unique by the request's position
            seg_ids = [_digest(b"own" + len(self).to_bytes(8, "little"))]
        self._ids.extend(seg_ids)
        self._lens.extend(seg_lens)
        self._counts.append(len(seg_lens))
        self._outputs.append(int(output_len))
        if self._custom is not None:
            self._custom.append(str(custom_id))

    def build(self, metadata: dict[str, Any]) -> Trace:
        """The trace, its ids renumbered densely (module docstring) and checked: an id always with the
        same length and predecessor (a 64-bit collision would break that; it is then an error)."""
        n = len(self)
        if n == 0:
            raise UserError(f"{self.source}: the file has no requests")
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self._counts, dtype=np.int64), out=offsets[1:])
        lens = np.frombuffer(self._lens, dtype=np.int64).copy()
        self._lens = array("q")  # copied: free it before the sort
        ids, first = _renumber(np.frombuffer(self._ids, dtype=np.int64), lens, offsets)
        self._ids = array("q")
        trace = Trace(
            request_id=np.arange(n, dtype=np.int64),
            source_codes=np.zeros(n, dtype=np.int32),
            sources=[self.source],
            seg_offsets=offsets,
            seg_ids=ids,
            seg_lens=lens,
            output_len=np.frombuffer(self._outputs, dtype=np.int64).copy(),
            custom_id=None if self._custom is None else np.asarray(self._custom, dtype=object),
        )
        if np.any(trace.output_len < 1) or np.any(lens < 1):
            raise RuntimeError("an importer added an empty segment or output")  # importers check both
        saved = int(lens.sum() - lens[first].sum())
        trace.metadata = {**metadata, "source_stats": source_stats(trace, len(first), saved)}
        return trace


def _renumber(raw: np.ndarray, lens: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids in order of first appearance, and each id's first occurrence; a UserError when an id
    comes with two lengths or two predecessors. A few words of memory a segment at the peak (one
    sort), where ``np.unique`` with its index and inverse takes several times more."""
    order = np.argsort(raw, kind="stable")  # equal ids: in order of occurrence
    sorted_ids = raw[order]
    new_group = np.empty(len(raw), dtype=bool)
    new_group[0] = True
    np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=new_group[1:])
    del sorted_ids
    same = ~new_group[1:]
    by_id = lens[order]
    bad = same & (by_id[1:] != by_id[:-1])  # an id with two lengths
    del by_id
    prev = np.empty(len(raw), dtype=np.int64)  # the id before each occurrence (-1 at a prompt's start)
    prev[0] = -1
    prev[1:] = raw[:-1]
    prev[offsets[:-1]] = -1
    by_id = prev[order]
    del prev
    bad |= same & (by_id[1:] != by_id[:-1])  # an id after two different ids
    del by_id, same
    if np.any(bad):
        raise UserError(
            "two different blocks got the same 64-bit id (a hash collision); import again with "
            "another --block-size"
        )
    first = order[new_group]  # each id's first occurrence, ids in sorted order
    group = np.cumsum(new_group, dtype=np.int64)  # sorted position -> 1 + id rank in sorted order
    group -= 1
    del new_group
    by_appearance = np.argsort(first, kind="stable")
    rank = np.empty(len(first), dtype=np.int64)
    rank[by_appearance] = np.arange(len(first), dtype=np.int64)
    np.take(rank, group, out=group)  # sorted position -> dense id, in place
    ids = np.empty(len(raw), dtype=np.int64)
    ids[order] = group
    return ids, first[by_appearance]


def source_stats(trace: Trace, distinct: int, saved: int) -> dict[str, Any]:
    """The imported file's statistics: request count, prompt and output lengths, block sharing."""
    p, d = trace.prompt_len, trace.output_len
    return {
        "requests": len(trace),
        "prompt_tokens": int(p.sum()),
        "output_tokens": int(d.sum()),
        "prompt_min": int(p.min()),
        "prompt_mean": float(p.mean()),
        "prompt_max": int(p.max()),
        "output_min": int(d.min()),
        "output_mean": float(d.mean()),
        "output_max": int(d.max()),
        "distinct_segments": distinct,
        "saved_tokens": saved,
        "sharing": saved / int(p.sum() + d.sum()),
    }


def source_name(path: str, given: str | None) -> str:
    """The trace's source name: ``given``, else the file's name without its extensions."""
    if given:
        return given
    name = os.path.basename(path)
    for ext in (".gz", ".jsonl", ".json", ".csv"):
        name = name.removesuffix(ext)
    return name or "imported"
