"""``trace export``: a blendsim trace in another simulator's format.

* ``vidur``: Vidur's (and Sarathi-Serve's) trace CSV, ``arrived_at,num_prefill_tokens,num_decode_tokens``;
  every request arrives at 0.0 (an offline batch is all there at the start). Lengths only.
* ``hash-ids``: Mooncake-style JSONL, ``{"timestamp", "input_length", "output_length", "hash_ids"}``,
  at ``block_size`` tokens a block (default: the trace's own import block size, else 512). Block
  ``k`` of a prompt ends at token ``e = min((k + 1) * block_size, p)``; two blocks get the same id
  exactly when their prompts agree on their first ``e`` tokens and both blocks end at ``e``, which
  the segments decide: the segment holding token ``e - 1`` fixes the whole prefix before it. Ids
  are consecutive integers in order of first use, as Mooncake's are. Importing the file back at
  the same block size gives the same lengths, and the same sharing when the trace's segments are
  whole blocks (an imported trace at its own block size).

Written atomically: nothing is left behind on an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from blendsim.errors import UserError, unknown
from blendsim.outputs import atomic_output
from blendsim.traces.trace import Trace

EXPORT_FORMATS = ("vidur", "hash-ids")
DEFAULT_HASH_BLOCK = 512  # Mooncake's


def export_trace(trace: Trace, fmt: str, path: str | os.PathLike[str], block_size: int | None = None) -> None:
    if fmt not in EXPORT_FORMATS:
        raise unknown("export format", fmt, EXPORT_FORMATS)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        if fmt == "vidur":
            fh.write("arrived_at,num_prefill_tokens,num_decode_tokens\n")
            fh.writelines(
                f"0.0,{p},{d}\n"
                for p, d in zip(trace.prompt_len.tolist(), trace.output_len.tolist(), strict=True)
            )
        else:
            block = block_size or own_block_size(trace) or DEFAULT_HASH_BLOCK
            if block < 1:
                raise UserError(f"block size must be >= 1, got {block}")
            fh.writelines(json.dumps(rec) + "\n" for rec in hash_id_records(trace, block))


def own_block_size(trace: Trace) -> int | None:
    """The block size a trace was imported at (its metadata), if any."""
    size = (trace.metadata.get("imported") or {}).get("block_size")
    return int(size) if isinstance(size, int) else None


def hash_id_records(trace: Trace, block: int) -> Any:
    """One Mooncake-style record per request (module docstring), in trace order."""
    ids: dict[tuple[int, int], int] = {}
    for i in range(len(trace)):
        seg_ids, seg_lens = trace.segments_of(i)
        ends = np.cumsum(seg_lens)
        p = int(ends[-1])
        block_ends = np.minimum(np.arange(1, -(-p // block) + 1) * block, p)
        holder = np.searchsorted(ends, block_ends - 1, side="right")  # segment holding token e - 1
        hash_ids = [
            ids.setdefault((int(seg_ids[h]), int(e)), len(ids))
            for h, e in zip(holder.tolist(), block_ends.tolist(), strict=True)
        ]
        yield {
            "timestamp": 0,
            "input_length": p,
            "output_length": int(trace.output_len[i]),
            "hash_ids": hash_ids,
        }
