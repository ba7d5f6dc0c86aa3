"""Importer of prefix-hash traces: JSONL lines with ``input_length``, ``output_length`` and ``hash_ids``.

Mooncake's traces (FAST '25 release: ``{"timestamp", "input_length", "output_length", "hash_ids"}``,
512-token blocks) and Qwen-Bailian's (16-token blocks) give each prompt as the ids of its fixed-size
token blocks, equal ids meaning equal prefixes. A request of ``input_length`` tokens has
``ceil(input_length / block_size)`` ids; its last block holds what is left, and is shared only with a
block of the same id and the same length (:mod:`.builder`). Other fields are ignored.
"""

from __future__ import annotations

from blendsim.options import is_integer
from blendsim.traces.importers.builder import TraceBuilder, hash_id_blocks, source_name
from blendsim.traces.importers.options import ImportOptions
from blendsim.traces.importers.reader import FileStats, int_value, json_records
from blendsim.traces.trace import Trace

DEFAULT_BLOCK = 512  # Mooncake's block size


def read_hash_ids(path: str, opts: ImportOptions) -> Trace:
    block = opts.block(DEFAULT_BLOCK)
    stats = FileStats(path)
    builder = TraceBuilder(source_name(path, opts.source))
    skipped = 0
    for where, rec in json_records(path, "trace file", stats, opts.progress):
        p = int_value(rec.get("input_length"), where, "input_length", minimum=1)
        d = int_value(rec.get("output_length"), where, "output_length", minimum=0)
        ids = rec.get("hash_ids")
        if not isinstance(ids, list) or not all(is_integer(x) for x in ids):
            raise where.error("missing" if ids is None else "must be a list of integers", "hash_ids")
        want = -(-p // block)
        if len(ids) != want:
            fits = [b for b in (16, 32, 64, 128, 256, 512) if -(-p // b) == len(ids)]
            hint = f"; the file's blocks may be {fits[0]} tokens (--block-size)" if fits else ""
            raise where.error(
                f"{len(ids)} ids for input_length {p} at block size {block} (expected {want}){hint}",
                "hash_ids",
            )
        if d == 0:
            skipped += 1
            continue
        seg_ids, seg_lens = hash_id_blocks(ids, p, block)
        builder.add(seg_lens, d, seg_ids)
    meta = {
        "imported": {
            "format": "hash-ids",
            **stats.as_dict(),
            "block_size": block,
            "skipped_no_output": skipped,
        }
    }
    return builder.build(meta)
