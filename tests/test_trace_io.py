"""Trace files: round trip, exact columns and metadata, and clear errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blendsim.errors import UserError
from blendsim.traces.io import COLUMNS, FORMAT_VERSION, read_trace, write_trace
from blendsim.traces.mixer import make_trace


@pytest.fixture(scope="module")
def small_trace():
    return make_trace(["burstgpt", "wildchat", "mmlu", "openvid"], 1.5, 0.3, 6000, seed=3)


def test_round_trip_and_schema(small_trace, tmp_path) -> None:
    path = tmp_path / "t.parquet"
    write_trace(small_trace, path)
    table = pq.read_table(path)
    assert table.column_names == list(COLUMNS)
    assert [table.schema.field(c).type for c in COLUMNS] == list(COLUMNS.values())
    meta = json.loads(table.schema.metadata[b"blendsim"])
    for key in ("generator", "seed", "sources", "targets", "model", "gpu", "achieved"):
        assert key in meta
    back = read_trace(path)
    for field in (
        "request_id",
        "source_codes",
        "seg_offsets",
        "seg_ids",
        "seg_lens",
        "output_len",
        "prompt_len",
    ):
        assert np.array_equal(getattr(back, field), getattr(small_trace, field)), field
    assert back.sources == small_trace.sources
    written = {k: v for k, v in back.metadata.items() if k not in ("format_version", "provenance")}
    assert written == json.loads(json.dumps(small_trace.metadata))
    assert back.metadata["format_version"] == FORMAT_VERSION
    keys = {"blendsim_version", "git_commit", "command", "seed", "profile"}
    assert set(back.metadata["provenance"]) == keys
    assert back.metadata["provenance"]["seed"] == 3
    df = pq.read_table(path).to_pandas()
    assert (df["segment_lens"].map(sum) == df["prompt_len"]).all()


def _write_table(path, trace, **changes) -> None:
    from blendsim.traces.io import to_table

    table = to_table(trace)
    for name, array in changes.items():
        if array is None:
            table = table.drop_columns([name])
        else:
            table = table.set_column(table.column_names.index(name), name, array)
    pq.write_table(table, path)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_trace(tmp_path / "nope.parquet")


def test_not_parquet(tmp_path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_text("request_id,source\n1,a\n")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        read_trace(path)


def test_directory(tmp_path) -> None:
    with pytest.raises(UserError, match="directory"):
        read_trace(tmp_path)


def test_missing_column(small_trace, tmp_path) -> None:
    path = tmp_path / "m.parquet"
    _write_table(path, small_trace, output_len=None)
    with pytest.raises(UserError, match="lacks column.*output_len"):
        read_trace(path)


def test_wrong_prompt_len(small_trace, tmp_path) -> None:
    path = tmp_path / "p.parquet"
    _write_table(path, small_trace, prompt_len=pa.array(small_trace.prompt_len + 1))
    with pytest.raises(UserError, match="prompt_len"):
        read_trace(path)


def test_broken_segment_invariant(small_trace, tmp_path) -> None:
    path = tmp_path / "s.parquet"
    lens = small_trace.seg_lens.copy()
    lens[0] += 1  # the system prompt id now has two lengths
    broken = small_trace.subset(np.arange(len(small_trace)))
    broken.seg_lens = lens
    broken.prompt_len = np.add.reduceat(lens, broken.seg_offsets[:-1])
    _write_table(path, broken)
    with pytest.raises(UserError, match="malformed"):
        read_trace(path)


def test_wrong_type(small_trace, tmp_path) -> None:
    path = tmp_path / "w.parquet"
    _write_table(path, small_trace, output_len=pa.array(small_trace.output_len.astype(float)))
    with pytest.raises(UserError, match="output_len"):
        read_trace(path)


def test_files_from_before_format_versions_still_load(small_trace, tmp_path) -> None:
    """A trace written before traces carried format_version (and provenance) reads as version 0."""
    from blendsim.traces.io import METADATA_KEY, to_table

    table = to_table(small_trace)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    old = {k: v for k, v in meta.items() if k not in ("format_version", "provenance")}
    path = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(old)}), path)
    back = read_trace(path)
    assert np.array_equal(back.output_len, small_trace.output_len) and "format_version" not in back.metadata
