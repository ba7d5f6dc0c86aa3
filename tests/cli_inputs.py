"""Bad and good inputs for the CLI's error tests: a tiny trace and one file per way a file can be
wrong, and the helpers that run a command line and check what it left behind."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blendsim.cli import main
from blendsim.profiler.profile import BUILTIN_DIR
from blendsim.traces.io import METADATA_KEY, to_table, write_trace
from blendsim.traces.mixer import make_preset

TRACE_REQUESTS = 300


def make_inputs(d: Path) -> dict[str, str]:
    """Every input file the error tests name, written into ``d``; name -> path."""
    trace = make_preset("trace1", requests=TRACE_REQUESTS)
    write_trace(trace, d / "t.parquet")
    table = to_table(trace)
    _table(d / "empty.parquet", table.slice(0, 0))
    segs = table.column("segments").to_pylist()
    lens = table.column("segment_lens").to_pylist()
    segs[0], lens[0] = [], []
    prompt = table.column("prompt_len").to_numpy().copy()
    prompt[0] = 0
    _table(d / "empty_prompt.parquet", _with(table, segments=segs, segment_lens=lens, prompt_len=prompt))
    out = table.column("output_len").to_numpy().copy()
    out[0] = 2**62
    _table(d / "huge_output.parquet", _with(table, output_len=out))
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    _table(
        d / "newer.parquet",
        table.replace_schema_metadata({METADATA_KEY: json.dumps({**meta, "format_version": 99})}),
    )
    config = {
        "num_hidden_layers": 4,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 512,
        "vocab_size": 1000,
    }
    for name, change in {
        "zero_heads": {"num_attention_heads": 0},
        "string_hidden": {"hidden_size": "4096"},
        "negative_layers": {"num_hidden_layers": -2},
    }.items():
        (d / f"{name}.json").write_text(json.dumps({**config, **change}))
    base = json.loads((BUILTIN_DIR / "a100-80g.json").read_text())
    for name, (block, key, value) in {
        "negative_peak": ("hardware", "peak_flops", -1.0),
        "zero_bandwidth": ("hardware", "mem_bandwidth", 0),
        "string_param": ("params", "gemm_eff_max", "fast"),
    }.items():
        broken = json.loads(json.dumps(base))
        broken[block][key] = value
        (d / f"{name}.json").write_text(json.dumps(broken))
    (d / "newer_profile.json").write_text(json.dumps({**base, "format": "blendsim-profile/2"}))
    rows = b"input_tokens,output_tokens\n" + b"".join(
        b"%d,%d\n" % (50 + i % 900, 1 + i % 300) for i in range(9000)
    )
    data = bytearray(gzip.compress(rows))
    data[300:340] = bytes(b ^ 0xFF for b in data[300:340])
    (d / "corrupt.csv.gz").write_bytes(bytes(data))
    (d / "afile").write_text("not a folder\n")
    os.mkfifo(d / "fifo")
    (d / "foreign").mkdir()
    (d / "foreign" / "notes.txt").write_text("someone else's\n")
    return {p.stem if p.suffix != ".gz" else "corrupt_gz": str(p) for p in d.iterdir()}


def _table(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def _with(table: pa.Table, **columns: object) -> pa.Table:
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))
    return table


@dataclass(frozen=True)
class Outcome:
    code: int
    err: str


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """``blendsim argv`` through ``blendsim.cli.main``; argparse's exits count as exit codes."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return Outcome(code, capsys.readouterr().err)


def tree(d: Path) -> dict[str, bytes | str]:
    """What lies under ``d``: relative path -> bytes of a file, or its kind."""
    out: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_fifo():
            out[rel] = "fifo"
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir"
    return out


def assert_refused(outcome: Outcome, names: str) -> None:
    """Exit 2, no traceback, and the last stderr line names ``names`` (the value or path)."""
    err = outcome.err.strip()
    assert outcome.code == 2, (outcome.code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert err and names in err.splitlines()[-1], err


def trace_lengths(path: str) -> np.ndarray:
    return pq.read_table(path).column("output_len").to_numpy()
