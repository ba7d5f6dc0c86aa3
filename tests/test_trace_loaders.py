"""Loaders on the real files in ../shared/traces/ and on the BurstGPT and Azure CSV shapes."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from blendsim.errors import UserError
from blendsim.traces.loaders import load_lengths
from blendsim.traces.mixer import make_trace
from blendsim.traces.stats import trace_stats


@pytest.mark.parametrize(
    ("name", "rows", "mean_in", "mean_out"),
    [
        ("azure2023_code.csv.gz", 8819, 2047.8, 27.9),
        ("azure2023_conv.csv.gz", 19366, 1154.7, 211.1),
        ("sharegpt_v3_lens.csv.gz", 58000, 248.2, 324.9),
    ],
)
def test_real_files(shared_traces, name: str, rows: int, mean_in: float, mean_out: float) -> None:
    # rows and means as listed in ../shared/traces/README.md
    inputs, outputs = load_lengths(shared_traces / name)
    assert len(inputs) == rows
    assert inputs.mean() == pytest.approx(mean_in, abs=0.1)
    assert outputs.mean() == pytest.approx(mean_out, abs=0.1)


def test_real_file_without_length_columns(shared_traces) -> None:
    with pytest.raises(UserError, match="lacks the length columns"):
        load_lengths(shared_traces / "mmlu_test_prompt_lengths.csv.gz")


def _write(path, text: str, gz: bool) -> None:
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


@pytest.mark.parametrize("gz", [False, True])
def test_burstgpt_shape(tmp_path, gz: bool) -> None:
    path = tmp_path / "burst.csv"
    _write(
        path,
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,0,1087,Conversation log\n"
        "118,GPT-4,417,276,693,API log\n",
        gz,
    )
    inputs, outputs = load_lengths(path)
    assert inputs.tolist() == [472, 417] and outputs.tolist() == [18, 276]  # the 0-token failure is skipped


def test_azure_shape(tmp_path) -> None:
    path = tmp_path / "azure.csv"
    _write(
        path,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,4808,10\n"
        "2023-11-16 18:15:50.9951690,3180,8\n",
        False,
    )
    inputs, outputs = load_lengths(path)
    assert inputs.tolist() == [4808, 3180] and outputs.tolist() == [10, 8]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("input_tokens,output_tokens\n10,5\n12,abc\n", r"row 3 column 'output_tokens'"),
        ("input_tokens,output_tokens\n10,5\n-3,4\n", r"row 3 column 'input_tokens'"),
        ("input_tokens,output_tokens\n10,5\n7\n", r"row 3 column 'output_tokens'.*missing"),
        ("prompt,answer\n1,2\n", "lacks the length columns"),
        ("", "empty"),
    ],
)
def test_bad_csv(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_lengths(path)


def test_missing_and_corrupt_gzip(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_lengths(tmp_path / "none.csv")
    path = tmp_path / "cut.csv.gz"
    whole = gzip.compress(
        b"input_tokens,output_tokens\n" + b"".join(b"%d,%d\n" % (i, i % 7) for i in range(9000))
    )
    path.write_bytes(whole[:60])  # truncated
    with pytest.raises(UserError, match="is not a valid gzip file"):
        load_lengths(path)
    flipped = bytearray(whole)
    flipped[200:240] = bytes(b ^ 0xFF for b in flipped[200:240])  # garbage rows before the CRC fails
    path.write_bytes(bytes(flipped))
    with pytest.raises(UserError, match="is not a valid gzip file"):
        load_lengths(path)


def test_lengths_from_drives_the_api_source(shared_traces) -> None:
    path = shared_traces / "azure2023_code.csv.gz"
    trace = make_trace(["azure", "mmlu", "openvid"], 1.0, 0.2, 20_000, lengths_from=str(path))
    stats = trace_stats(trace)
    assert stats["total"]["density"] == pytest.approx(1.0, rel=0.03)
    inputs, _ = load_lengths(path)
    azure_p = trace.prompt_len[trace.source_codes == 0] - 25  # minus azure's system prompt
    assert np.isin(azure_p, inputs).all()
    with pytest.raises(UserError, match="lengths-from applies"):
        make_trace(["mmlu", "openvid"], 1.0, 0.5, 1000, lengths_from=str(path))
