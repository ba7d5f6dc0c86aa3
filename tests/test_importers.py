"""Importers on small files made here: one test per format, each bad-record case, round trips."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from batch_helpers import chat_line, tiny_model_dir, write_jsonl

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.traces.importers import ImportOptions, import_trace
from blendsim.traces.importers.export import export_trace
from blendsim.traces.io import read_trace
from blendsim.traces.mixer import make_trace

SYSTEM = {"role": "system", "content": "you are a terse expert " * 3}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_model_dir(tmp_path_factory.mktemp("tok")))


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _openai(path: Path, model_dir: str, lines: list, **kw: object) -> object:
    write_jsonl(path, lines)
    return import_trace(str(path), "openai", ImportOptions(model_dir=model_dir, **kw))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- openai
def test_openai_chat_blocks_share_the_system_prompt(tmp_path: Path, model_dir: str) -> None:
    lines = [
        chat_line(f"r{i}", [SYSTEM, _user(f"what is two plus {w}")], 5 + i)
        for i, w in enumerate(["three", "four"])
    ]
    tr = _openai(tmp_path / "b.jsonl", model_dir, lines, block_size=4)
    assert tr.custom_id.tolist() == ["r0", "r1"]
    assert tr.output_len.tolist() == [5, 6]  # max_tokens
    assert np.all(tr.seg_lens == 4) and tr.prompt_len.tolist() == [28, 28]
    a, b = tr.segments_of(0)[0], tr.segments_of(1)[0]
    assert a[:6].tolist() == b[:6].tolist() and a[6] != b[6]  # 24 shared tokens, then the questions differ
    assert tr.saved_tokens() == 24
    meta = tr.metadata
    assert meta["imported"]["format"] == "openai" and meta["imported"]["block_size"] == 4
    assert meta["output_lengths"]["source"] == "max_tokens" and meta["source_stats"]["requests"] == 2


def test_openai_partial_block_shared_only_by_equal_prompts(tmp_path: Path, model_dir: str) -> None:
    same = [SYSTEM, _user("hello there")]
    tr = _openai(tmp_path / "b.jsonl", model_dir, [chat_line("a", same), chat_line("b", same)], block_size=7)
    assert tr.prompt_len[0] % 7 != 0  # the last block is partial ...
    assert (
        tr.segments_of(0)[0].tolist() == tr.segments_of(1)[0].tolist()
    )  # ... and identical prompts share it


def test_openai_completion_and_max_completion_tokens(tmp_path: Path, model_dir: str) -> None:
    comp = {
        "custom_id": "c",
        "method": "POST",
        "url": "/v1/completions",
        "body": {"prompt": "hello there", "max_tokens": 3},
    }
    ids = {
        "custom_id": "t",
        "method": "POST",
        "url": "/v1/completions",
        "body": {"prompt": [5, 6, 7], "max_tokens": 2},
    }
    chat = chat_line("m", [_user("hello")], max_tokens=None, max_completion_tokens=9)
    tr = _openai(tmp_path / "b.jsonl", model_dir, [comp, ids, chat])
    assert tr.prompt_len.tolist()[:2] == [2, 3] and tr.output_len.tolist() == [3, 2, 9]
    assert tr.metadata["imported"]["endpoints"] == {"chat": 1, "completion": 2}


def test_openai_lengths_from_results_and_field(tmp_path: Path, model_dir: str) -> None:
    lines = [chat_line(f"r{i}", [_user("hello")], 50, metadata={"guess": 7 + i}) for i in range(3)]
    results = [
        {
            "id": "x",
            "custom_id": "r0",
            "response": {"status_code": 200, "body": {"usage": {"completion_tokens": 12}}},
            "error": None,
        },
        {
            "id": "y",
            "custom_id": "r1",
            "response": {"status_code": 400, "body": None},
            "error": {"message": "bad"},
        },
        {
            "id": "z",
            "custom_id": "r2",
            "response": {"status_code": 200, "body": {"usage": {"completion_tokens": 99}}},
            "error": None,
        },
    ]
    res = write_jsonl(tmp_path / "res.jsonl", results)
    tr = _openai(tmp_path / "b.jsonl", model_dir, lines, lengths_from=str(res))
    assert tr.output_len.tolist() == [12, 50, 50]  # r1 failed: max_tokens; r2 capped at max_tokens
    assert (
        tr.metadata["output_lengths"]["source"] == "results"
        and tr.metadata["output_lengths"]["estimated"] == 2
    )
    tr = _openai(tmp_path / "b.jsonl", model_dir, lines, length_field="body.metadata.guess")
    assert tr.output_len.tolist() == [7, 8, 9] and tr.metadata["output_lengths"]["source"] == "field"


def test_openai_missing_max_tokens(tmp_path: Path, model_dir: str) -> None:
    lines = [chat_line("a", [_user("hello")]), chat_line("b", [_user("hello")], max_tokens=None)]
    with pytest.raises(UserError, match=r"b\.jsonl line 2, field 'body\.max_tokens': missing"):
        _openai(tmp_path / "b.jsonl", model_dir, lines)
    tr = _openai(tmp_path / "b.jsonl", model_dir, lines, default_max_tokens=33)
    assert tr.output_len.tolist() == [8, 33]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", r"line 2: not valid JSON"),
        ("[1, 2]", r"line 2: a record must be a JSON object"),
        (
            {"method": "POST", "url": "/v1/chat/completions", "body": {}},
            r"line 2, field 'custom_id': missing",
        ),
        (
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}},
            r"'custom_id': 'a' is also the id of line 1",
        ),
        ({"custom_id": "z", "method": "GET", "url": "/v1/chat/completions", "body": {}}, r"field 'method'"),
        ({"custom_id": "z", "method": "POST", "url": "/v1/embeddings", "body": {}}, r"field 'url'"),
        ({"custom_id": "z", "method": "POST", "url": "/v1/chat/completions"}, r"field 'body': missing"),
        (chat_line("z", []), r"field 'body\.messages': must be a non-empty list"),
        (chat_line("z", [{"role": "user"}]), r"field 'body\.messages\[0\]\.content'"),
        (
            chat_line("z", [{"role": "user", "content": [{"type": "image_url"}]}]),
            r"'body\.messages\[0\]\.content\[0\]'",
        ),
        (chat_line("z", [{"content": "x"}]), r"'body\.messages\[0\]\.role'"),
        (chat_line("z", [_user("x")], max_tokens=0), r"'body\.max_tokens': 0 is not an integer >= 1"),
        (chat_line("z", [_user("x")], n=2), r"'body\.n'"),
        (
            {"custom_id": "z", "method": "POST", "url": "/v1/completions", "body": {"prompt": ["a", "b"]}},
            r"'body\.prompt'",
        ),
    ],
)
def test_openai_bad_records(tmp_path: Path, model_dir: str, line: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        _openai(tmp_path / "b.jsonl", model_dir, [chat_line("a", [_user("hello")]), line])


def test_openai_needs_a_tokenizer(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [chat_line("a", [_user("hello")])])
    with pytest.raises(UserError, match="--model-dir"):
        import_trace(str(path), "openai")
    with pytest.raises(UserError, match="does not exist"):
        import_trace(str(path), "openai", ImportOptions(model_dir=str(tmp_path / "nope")))


# ---------------------------------------------------------------------- hash ids
def _hash_lines(path: Path, recs: list) -> Path:
    return write_jsonl(path, recs)


def test_hash_ids_blocks_and_partial_last_block(tmp_path: Path) -> None:
    recs = [
        {"timestamp": 0, "input_length": 10, "output_length": 3, "hash_ids": [0, 1, 2]},  # 4 + 4 + 2
        {"timestamp": 5, "input_length": 12, "output_length": 4, "hash_ids": [0, 1, 2]},  # id 2 is full here
        {"timestamp": 9, "input_length": 10, "output_length": 5, "hash_ids": [0, 1, 2]},  # equal to the first
        {"timestamp": 9, "input_length": 7, "output_length": 0, "hash_ids": [0, 9]},  # no output: skipped
    ]
    tr = import_trace(str(_hash_lines(tmp_path / "m.jsonl", recs)), "hash-ids", ImportOptions(block_size=4))
    assert len(tr) == 3 and tr.prompt_len.tolist() == [10, 12, 10] and tr.output_len.tolist() == [3, 4, 5]
    s = [tr.segments_of(i)[0].tolist() for i in range(3)]
    assert s[0][:2] == s[1][:2] and s[0][2] != s[1][2] and s[0] == s[2]
    assert tr.saved_tokens() == 8 + 10  # request 2 shares 8 tokens, request 3 all 10
    assert tr.metadata["imported"]["skipped_no_output"] == 1 and tr.metadata["imported"]["block_size"] == 4


@pytest.mark.parametrize(
    ("rec", "match"),
    [
        ({"output_length": 1, "hash_ids": [0]}, r"line 1, field 'input_length': missing"),
        (
            {"input_length": 4, "output_length": -1, "hash_ids": [0]},
            r"'output_length': -1 is not an integer >= 0",
        ),
        (
            {"input_length": 4, "output_length": 1, "hash_ids": ["a"]},
            r"'hash_ids': must be a list of integers",
        ),
        ({"input_length": 4, "output_length": 1}, r"'hash_ids': missing"),
        (
            {"input_length": 1024, "output_length": 1, "hash_ids": list(range(64))},
            r"64 ids .* blocks may be 16 tokens",
        ),
    ],
)
def test_hash_ids_bad_records(tmp_path: Path, rec: dict, match: str) -> None:
    path = _hash_lines(tmp_path / "m.jsonl", [rec])
    with pytest.raises(UserError, match=match):
        import_trace(str(path), "hash-ids")


# ---------------------------------------------------------------------- csv formats
def test_vidur_and_sarathi_csv(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,374,44\n4.3,396,109\n\n5.0,10,0\n")
    tr = import_trace(str(path), "vidur")
    assert tr.prompt_len.tolist() == [374, 396] and tr.output_len.tolist() == [44, 109]
    assert tr.sharing() == 0.0 and tr.metadata["imported"]["skipped_no_output"] == 1


def test_splitwise_csv_gzip(tmp_path: Path) -> None:
    path = tmp_path / "s.csv.gz"
    text = "request_id,request_type,application_id,arrival_timestamp,batch_size,prompt_size,token_size\n"
    text += "0,2,0,0.1,1,1020,12\n1,2,0,0.2,1,33,250\n"
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    tr = import_trace(str(path), "splitwise")
    assert (
        tr.prompt_len.tolist() == [1020, 33] and tr.output_len.tolist() == [12, 250] and tr.sources == ["s"]
    )


@pytest.mark.parametrize(
    ("fmt", "text", "match"),
    [
        (
            "vidur",
            "arrived_at,num_prefill_tokens\n0,1\n",
            r"line 1: the header .* lacks column\(s\) num_decode_tokens",
        ),
        (
            "vidur",
            "num_prefill_tokens,num_decode_tokens\n10,x\n",
            r"line 2, field 'num_decode_tokens': 'x' is not",
        ),
        ("vidur", "num_prefill_tokens,num_decode_tokens\n0,3\n", r"line 2, field 'num_prefill_tokens'"),
        ("vidur", "num_prefill_tokens,num_decode_tokens\n10,3,4\n", r"line 2: 3 values for the header's 2"),
        ("splitwise", "prompt_size,token_size\n2.5,1\n", r"line 2, field 'prompt_size': '2.5'"),
        ("vidur", "", r"is empty"),
    ],
)
def test_csv_bad_records(tmp_path: Path, fmt: str, text: str, match: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        import_trace(str(path), fmt)


# ---------------------------------------------------------------------- llmservingsim
def test_llmservingsim_with_and_without_token_ids(tmp_path: Path) -> None:
    recs = [
        {"input_toks": 6, "output_toks": 2, "arrival_time_ns": 0, "input_tok_ids": [1, 2, 3, 4, 5, 6]},
        {"input_toks": 5, "output_toks": 3, "arrival_time_ns": 9, "input_tok_ids": [1, 2, 3, 4, 9]},
        {"input_toks": 40, "output_toks": 7, "arrival_time_ns": 9},
    ]
    tr = import_trace(
        str(write_jsonl(tmp_path / "w.jsonl", recs)), "llmservingsim", ImportOptions(block_size=4)
    )
    assert tr.prompt_len.tolist() == [6, 5, 40] and tr.output_len.tolist() == [2, 3, 7]
    assert tr.saved_tokens() == 4 and tr.metadata["imported"]["requests_with_token_ids"] == 2


@pytest.mark.parametrize(
    ("rec", "match"),
    [
        (
            {"session_id": "s", "arrival_time_ns": 0, "sub_requests": []},
            r"field 'sub_requests': an agentic session",
        ),
        (
            {"input_toks": 3, "output_toks": 1, "input_tok_ids": [1, 2]},
            r"'input_tok_ids': 2 token ids for input_toks 3",
        ),
        ({"input_toks": 3, "output_toks": 1, "input_tok_ids": "abc"}, r"'input_tok_ids': must be a list"),
        ({"output_toks": 1}, r"'input_toks': missing"),
    ],
)
def test_llmservingsim_bad_records(tmp_path: Path, rec: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        import_trace(str(write_jsonl(tmp_path / "w.jsonl", [rec])), "llmservingsim")


# ---------------------------------------------------------------------- round trips
def _generated():
    return make_trace(["burstgpt", "mmlu", "openvid"], 1.2, 0.3, 400, seed=3)


def test_round_trip_vidur_keeps_lengths(tmp_path: Path) -> None:
    tr = _generated()
    export_trace(tr, "vidur", tmp_path / "v.csv")
    back = import_trace(str(tmp_path / "v.csv"), "vidur")
    assert np.array_equal(back.prompt_len, tr.prompt_len) and np.array_equal(back.output_len, tr.output_len)


def _block_saved(tr, block: int) -> int:
    """Tokens of blocks (ending at a multiple of ``block`` or the prompt's end) an earlier request had."""
    seen: set[tuple[int, int]] = set()
    saved = 0
    for i in range(len(tr)):
        ids, lens = tr.segments_of(i)
        ends = np.cumsum(lens)
        p = int(ends[-1])
        start = 0
        for e in [*range(block, p, block), p]:
            key = (int(ids[np.searchsorted(ends, e - 1, side="right")]), e)
            saved += (e - start) if key in seen else 0
            seen.add(key)
            start = e
    return saved


@pytest.mark.parametrize("block", [16, 64])
def test_round_trip_hash_ids_keeps_lengths_and_block_sharing(tmp_path: Path, block: int) -> None:
    tr = _generated()
    export_trace(tr, "hash-ids", tmp_path / "h.jsonl", block)
    back = import_trace(str(tmp_path / "h.jsonl"), "hash-ids", ImportOptions(block_size=block))
    assert np.array_equal(back.prompt_len, tr.prompt_len) and np.array_equal(back.output_len, tr.output_len)
    assert back.saved_tokens() == _block_saved(tr, block) > 0
    # an imported trace at its own block size comes back exactly: same segments, same sharing
    export_trace(back, "hash-ids", tmp_path / "h2.jsonl")  # default: the trace's own block size
    again = import_trace(str(tmp_path / "h2.jsonl"), "hash-ids", ImportOptions(block_size=block))
    assert np.array_equal(again.seg_ids, back.seg_ids) and np.array_equal(again.seg_lens, back.seg_lens)
    assert np.array_equal(again.output_len, back.output_len) and again.saved_tokens() == back.saved_tokens()


def test_round_trip_openai_through_hash_ids(tmp_path: Path, model_dir: str) -> None:
    lines = [
        chat_line(f"r{i}", [SYSTEM, _user(f"what is two plus {w}")], 5 + i)
        for i, w in enumerate(["three", "four", "five"])
    ]
    tr = _openai(tmp_path / "b.jsonl", model_dir, lines, block_size=4)
    export_trace(tr, "hash-ids", tmp_path / "h.jsonl")
    back = import_trace(str(tmp_path / "h.jsonl"), "hash-ids", ImportOptions(block_size=4))
    assert np.array_equal(back.seg_ids, tr.seg_ids) and back.saved_tokens() == tr.saved_tokens()


# ---------------------------------------------------------------------- CLI
def test_cli_import_stats_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "m.jsonl"
    _hash_lines(src, [{"input_length": 1000, "output_length": 5, "hash_ids": [0, 1]}] * 2)
    out = tmp_path / "m.parquet"
    assert main(["trace", "import", str(src), "--format", "hash-ids", "-o", str(out), "-q"]) == 0
    assert "2 requests" in capsys.readouterr().out
    assert read_trace(out).metadata["imported"]["sha256"]
    assert main(["trace", "stats", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "imported from m.jsonl (hash-ids, 512-token blocks, 2 lines" in shown
    assert main(["trace", "stats", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["source_stats"]["requests"] == 2
    assert main(["trace", "export", str(out), "--format", "vidur", "-o", str(tmp_path / "v.csv")]) == 0
    assert (tmp_path / "v.csv").read_text().splitlines()[1] == "0.0,1000,5"


def test_cli_bad_record_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "m.jsonl"
    _hash_lines(src, [{"input_length": 4, "output_length": 1, "hash_ids": [0]}, {"input_length": 4}])
    out = tmp_path / "m.parquet"
    assert (
        main(["trace", "import", str(src), "--format", "hash-ids", "-o", str(out), "--block-size", "4"]) == 2
    )
    assert "m.jsonl line 2, field 'output_length': missing" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_import_reads_in_bounded_memory(tmp_path: Path) -> None:
    """A file is streamed: the import's peak Python memory is its compact output columns and the
    build's temporaries (< 256 bytes a request, where one record kept as a dict would cost more),
    whatever the lines hold: here 50,000 lines of ~420 bytes, 21 MB, peak below half of that
    (benchmarks/bench_import.py imports 1M lines)."""
    import tracemalloc

    path = tmp_path / "big.csv"
    note = "x" * 400
    with open(path, "w") as fh:
        fh.write("num_prefill_tokens,num_decode_tokens,note\n")
        fh.writelines(f"{100 + i % 900},{1 + i % 300},{note}\n" for i in range(50_000))
    tracemalloc.start()
    tr = import_trace(str(path), "vidur")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(tr) == 50_000
    assert peak < 256 * len(tr) and peak < path.stat().st_size / 2, (peak, path.stat().st_size)
