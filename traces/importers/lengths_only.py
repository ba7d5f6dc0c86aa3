"""Importers of length traces (no prefix structure): Vidur and Sarathi-Serve CSVs, splitwise-sim CSVs.

Each request becomes one segment of its own. A record with no output tokens (a failed request in a
production trace) is skipped and counted in the metadata; a missing or non-integer count is an error
naming the line and the column.
"""

from __future__ import annotations

from blendsim.traces.importers.builder import TraceBuilder, source_name
from blendsim.traces.importers.options import ImportOptions
from blendsim.traces.importers.reader import FileStats, csv_records, int_value
from blendsim.traces.trace import Trace

# (input column, output column): Vidur's and Sarathi-Serve's trace CSVs (``arrived_at`` optional);
# splitwise-sim's (README "Request Traces": request_id, request_type, application_id,
# arrival_timestamp, batch_size, prompt_size, token_size)
VIDUR_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
SPLITWISE_COLUMNS = ("prompt_size", "token_size")


def read_vidur(path: str, opts: ImportOptions) -> Trace:
    return _read_csv(path, opts, "vidur", VIDUR_COLUMNS)


def read_splitwise(path: str, opts: ImportOptions) -> Trace:
    return _read_csv(path, opts, "splitwise", SPLITWISE_COLUMNS)


def _read_csv(path: str, opts: ImportOptions, fmt: str, columns: tuple[str, str]) -> Trace:
    stats = FileStats(path)
    builder = TraceBuilder(source_name(path, opts.source))
    skipped = 0
    c_in, c_out = columns
    for where, row in csv_records(path, "trace file", stats, columns, opts.progress):
        p = int_value(row[c_in], where, c_in, minimum=1)
        d = int_value(row[c_out], where, c_out, minimum=0)
        if d == 0:
            skipped += 1
            continue
        builder.add([p], d)
    meta = {"imported": {"format": fmt, **stats.as_dict(), "skipped_no_output": skipped}}
    return builder.build(meta)
