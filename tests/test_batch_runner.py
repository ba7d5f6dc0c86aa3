"""run-batch's parts that need no engine: the results file (resume, partial lines, foreign ids), the
output line schema, the body's sampling parameters and error lines, and the checks before vLLM starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_helpers import chat_line, tiny_model_dir, write_jsonl

from blendsim.errors import UserError
from blendsim.executor.batch_feed import read_batch, sampling_params
from blendsim.executor.batch_output import ResultsFile, error_line, success_line, usage_of
from blendsim.traces.importers.chat import PromptTokenizer
from blendsim.traces.importers.openai import check_line
from blendsim.traces.importers.reader import Where


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PromptTokenizer:
    return PromptTokenizer(str(tiny_model_dir(tmp_path_factory.mktemp("tok"))))


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_output_lines_follow_the_openai_batch_schema() -> None:
    ok = success_line("a", True, "m", "hi", "stop", usage_of(10, 2, 8))
    assert set(ok) == {"id", "custom_id", "response", "error"} and ok["error"] is None
    assert ok["response"]["status_code"] == 200 and set(ok["response"]) == {
        "status_code",
        "request_id",
        "body",
    }
    body = ok["response"]["body"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hi",
    }
    assert body["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    comp = success_line("b", False, "m", "x", "length", usage_of(1, 1, 0))["response"]["body"]
    assert comp["object"] == "text_completion" and comp["choices"][0]["text"] == "x"
    bad = error_line("c", "nope")
    assert (
        bad["response"]["status_code"] == 400
        and bad["response"]["body"] is None
        and bad["error"]["message"] == "nope"
    )


def test_results_file_resumes_and_drops_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    out = ResultsFile.open(str(path), {"a", "b", "c"})
    out.append(error_line("a", "x"))
    out.append(error_line("b", "y"))
    out.close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"id": "z", "custom_id": "c", "resp')  # a kill in the middle of a line
    again = ResultsFile.open(str(path), {"a", "b", "c"})
    assert set(again.done) == {"a", "b"} and again.dropped_partial and path.read_bytes() == whole
    again.append(error_line("c", "z"))
    again.close()
    assert [json.loads(x)["custom_id"] for x in path.read_text().splitlines()] == ["a", "b", "c"]


def test_results_file_of_another_batch_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [error_line("a", "x"), error_line("a", "y")])
    with pytest.raises(UserError, match="custom_id 'a' is there twice"):
        ResultsFile.open(str(path), {"a"})
    write_jsonl(path, [error_line("q", "x")])
    with pytest.raises(UserError, match="'q' is not in the batch"):
        ResultsFile.open(str(path), {"a"})
    path.write_text("not json\n")
    with pytest.raises(UserError, match="line 1 is not a batch output line"):
        ResultsFile.open(str(path), {"a"})


def _line(**body: object):  # type: ignore[no-untyped-def]
    return check_line(Where("b.jsonl", 3), chat_line("x", [_user("hello")], **body))  # type: ignore[arg-type]


def test_sampling_params_from_the_body() -> None:
    sp = sampling_params(_line(max_tokens=7, temperature=0, seed=3, stop=["\n"], user="u"), 10, 100)
    assert sp == {"temperature": 0, "seed": 3, "stop": ["\n"], "max_tokens": 7}
    assert (
        sampling_params(_line(max_tokens=None), 10, 100)["max_tokens"] == 90
    )  # vLLM: the rest of the context


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"tools": [{"type": "function"}]}, "not served by blendsim run-batch: tools"),
        ({"stream": True}, "stream"),
        ({"logprobs": True, "response_format": {"type": "json_object"}}, "response_format, logprobs"),
        ({"max_tokens": 95}, "context is 100 tokens; the prompt has 10 and max_tokens asks 95"),
    ],
)
def test_sampling_params_refuse_what_is_not_served(body: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        sampling_params(_line(**body), 10, 100)


def test_read_batch_turns_bad_requests_into_errors(tmp_path: Path, tokenizer: PromptTokenizer) -> None:
    lines = [
        chat_line("ok1", [_user("hello there")], 5),
        chat_line("tools", [_user("hello")], 5, tools=[{"type": "function"}]),
        {"custom_id": "emb", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}},
        chat_line("long", [_user("hello")], 5000),
        chat_line("ok2", [_user("what is two plus three")], 6),
    ]
    feed = read_batch(str(write_jsonl(tmp_path / "b.jsonl", lines)), tokenizer, 4, 1000, 10_000)
    assert [ln.custom_id for ln in feed.lines] == ["ok1", "ok2"] and feed.file_index.tolist() == [0, 4]
    assert set(feed.errors) == {"tools", "emb", "long"} and "field 'url'" in feed.errors["emb"]
    assert feed.trace.custom_id.tolist() == ["ok1", "ok2"] and feed.trace.output_len.tolist() == [5, 6]
    assert feed.all_ids == {"ok1", "tools", "emb", "long", "ok2"}
    assert feed.prompt(0) == tokenizer.chat([_user("hello there")]) and feed.sampling(1)["max_tokens"] == 6
    sub = feed.subset(feed.file_index[1:] * 0 + 1)
    assert [ln.custom_id for ln in sub.lines] == ["ok2"] and sub.file_index.tolist() == [4]


def test_read_batch_needs_custom_ids(tmp_path: Path, tokenizer: PromptTokenizer) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [chat_line("a", [_user("hi")]), {"method": "POST"}])
    with pytest.raises(UserError, match=r"line 2, field 'custom_id': missing"):
        read_batch(str(path), tokenizer, 4, 1000, 10_000)
    write_jsonl(path, [chat_line("a", [_user("hi")]), chat_line("a", [_user("hi")])])
    with pytest.raises(UserError, match="is also the id of line 1"):
        read_batch(str(path), tokenizer, 4, 1000, 10_000)
