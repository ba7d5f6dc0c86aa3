"""Trace files: one Parquet file, one row per request, in arrival order.

Columns (exactly): ``request_id`` int64, ``source`` string, ``segments`` list<int64>,
``segment_lens`` list<int64> (summing to ``prompt_len``), ``prompt_len`` int64, ``output_len`` int64;
a trace imported from a batch file adds ``custom_id`` string (each line's own id).
The schema metadata key ``blendsim`` holds JSON: ``format_version`` (:data:`FORMAT_VERSION`; files
from before versions count as 0 and read the same), ``provenance`` (what wrote the file:
:func:`blendsim.provenance.provenance`), generator version, seed, sources, targets, model, GPU,
achieved density and sharing. Written deterministically (no timestamps): the same command, the same
bytes. A file of a newer format version than this blendsim reads is refused naming both versions.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from blendsim.errors import UserError
from blendsim.outputs import atomic_output, json_text
from blendsim.provenance import check_format, provenance
from blendsim.traces.trace import Trace

METADATA_KEY = b"blendsim"
FORMAT_VERSION = 1  # bump when the columns or the metadata change meaning; readers upgrade older ones
COLUMNS: dict[str, pa.DataType] = {
    "request_id": pa.int64(),
    "source": pa.string(),
    "segments": pa.list_(pa.int64()),
    "segment_lens": pa.list_(pa.int64()),
    "prompt_len": pa.int64(),
    "output_len": pa.int64(),
}
CUSTOM_ID = "custom_id"  # optional column


def to_table(trace: Trace) -> pa.Table:
    offsets = pa.array(trace.seg_offsets.astype(np.int32), type=pa.int32())
    source = pa.DictionaryArray.from_arrays(
        pa.array(trace.source_codes, type=pa.int32()), pa.array(trace.sources, type=pa.string())
    ).cast(pa.string())
    arrays = [
        pa.array(trace.request_id, type=pa.int64()),
        source,
        pa.ListArray.from_arrays(offsets, pa.array(trace.seg_ids, type=pa.int64())),
        pa.ListArray.from_arrays(offsets, pa.array(trace.seg_lens, type=pa.int64())),
        pa.array(trace.prompt_len, type=pa.int64()),
        pa.array(trace.output_len, type=pa.int64()),
    ]
    meta = {
        **trace.metadata,
        "format_version": FORMAT_VERSION,
        "provenance": provenance(seed=trace.metadata.get("seed"), profile=trace.metadata.get("gpu")),
    }
    fields = [pa.field(name, typ) for name, typ in COLUMNS.items()]
    if trace.custom_id is not None:
        arrays.append(pa.array(trace.custom_id.tolist(), type=pa.string()))
        fields.append(pa.field(CUSTOM_ID, pa.string()))
    schema = pa.schema(
        fields,
        metadata={METADATA_KEY: json_text(meta, indent=None, sort_keys=True).encode()},
    )
    return pa.Table.from_arrays(arrays, schema=schema)


def write_trace(trace: Trace, path: str | os.PathLike[str]) -> None:
    """Write ``trace`` to ``path`` atomically (no half-written file on any error); the path is the
    caller's to check (:func:`blendsim.outputs.output_file`, at the CLI edge)."""
    table = to_table(trace)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)


def _read_table(path: str) -> pa.Table:
    if not os.path.exists(path):
        raise UserError(f"trace file {path!r} does not exist")
    if os.path.isdir(path):
        raise UserError(f"trace file {path!r} is a directory, not a Parquet file")
    try:
        return pq.read_table(path)
    except PermissionError:
        raise UserError(f"trace file {path!r} is not readable (permission denied)") from None
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"trace file {path!r} is not a readable Parquet file: {first}") from None


def _check_columns(table: pa.Table, path: str) -> None:
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise UserError(
            f"trace file {path!r} lacks column(s) {', '.join(missing)}; a trace needs {', '.join(COLUMNS)}"
        )
    for name, typ in COLUMNS.items():
        got = table.schema.field(name).type
        ok = (
            pa.types.is_integer(got)
            if typ == pa.int64()
            else (pa.types.is_string(got) or pa.types.is_large_string(got) or pa.types.is_dictionary(got))
            if typ == pa.string()
            else (pa.types.is_list(got) or pa.types.is_large_list(got))
            and pa.types.is_integer(got.value_type)
        )
        if not ok:
            raise UserError(f"trace file {path!r}: column {name!r} has type {got}, expected {typ}")
        if table.column(name).null_count:
            raise UserError(f"trace file {path!r}: column {name!r} has missing values")


def _metadata(table: pa.Table, path: str) -> dict[str, Any]:
    """The file's blendsim metadata ({} for a plain table), its format version checked."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(meta, dict):
        return {}
    check_format(f"trace file {path!r}", meta.get("format_version", 0), FORMAT_VERSION)
    return meta


def _custom_ids(table: pa.Table, path: str) -> np.ndarray | None:
    if CUSTOM_ID not in table.column_names:
        return None
    column = table.column(CUSTOM_ID)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or column.null_count:
        raise UserError(f"trace file {path!r}: column {CUSTOM_ID!r} must be strings, none missing")
    return np.asarray(column.to_pylist(), dtype=object)


def from_table(table: pa.Table, path: str = "<table>") -> Trace:
    """A Trace from a table with the trace columns; raises UserError when it is malformed."""
    metadata = _metadata(table, path)
    _check_columns(table, path)
    segs = table.column("segments").combine_chunks()
    lens = table.column("segment_lens").combine_chunks()
    counts = pc.list_value_length(segs).to_numpy(zero_copy_only=False).astype(np.int64)
    if not np.array_equal(counts, pc.list_value_length(lens).to_numpy(zero_copy_only=False)):
        raise UserError(f"trace file {path!r}: segments and segment_lens differ in length on some row")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    source = table.column("source").to_numpy(zero_copy_only=False).astype(str)
    names, first, codes = np.unique(source, return_index=True, return_inverse=True)
    first_seen = np.argsort(first, kind="stable")  # sources in order of first appearance
    remap = np.empty(len(names), dtype=np.int32)
    remap[first_seen] = np.arange(len(names), dtype=np.int32)
    trace = Trace(
        request_id=table.column("request_id").to_numpy().astype(np.int64),
        source_codes=remap[codes].astype(np.int32),
        sources=[str(names[i]) for i in first_seen],
        seg_offsets=offsets,
        seg_ids=pc.list_flatten(segs).to_numpy(zero_copy_only=False).astype(np.int64),
        seg_lens=pc.list_flatten(lens).to_numpy(zero_copy_only=False).astype(np.int64),
        output_len=table.column("output_len").to_numpy().astype(np.int64),
        metadata=metadata,
        custom_id=_custom_ids(table, path),
    )
    try:
        trace.validate()
    except UserError as exc:
        raise UserError(f"trace file {path!r} is malformed: {exc}") from None
    if not np.array_equal(trace.prompt_len, table.column("prompt_len").to_numpy()):
        bad = int(np.argmax(trace.prompt_len != table.column("prompt_len").to_numpy()))
        raise UserError(
            f"trace file {path!r}: row {bad} has prompt_len that is not the sum of its segment_lens"
        )
    return trace


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace file written by :func:`write_trace` (or any table with the same columns)."""
    p = os.fspath(path)
    return from_table(_read_table(p), p)
