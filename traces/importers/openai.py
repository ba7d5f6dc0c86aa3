"""Importer of OpenAI Batch input files: JSONL, one request a line.

A line is ``{"custom_id", "method": "POST", "url", "body"}`` (OpenAI's Batch API; vLLM's run-batch
reads the same). ``url`` ``/v1/chat/completions`` takes a ``body.messages`` list, ``/v1/completions``
a ``body.prompt`` (one string or one list of token ids). The prompt is tokenized as vLLM tokenizes it
(:mod:`.chat`, the model directory's tokenizer and chat template) and split into chained token
blocks (:mod:`.builder`; ``block_size`` default 128, the vLLM-CPU engine's block). ``custom_id`` is
kept in the trace.

Output length, in this order: an earlier run's output file (``lengths_from``: its
``usage.completion_tokens``, joined on ``custom_id``; lines it lacks fall back to ``max_tokens``), a
field of each line (``length_field``), else ``body.max_completion_tokens`` / ``body.max_tokens``
(``default_max_tokens`` for a line with neither; without it that is an error naming the line). An
estimate never exceeds the line's ``max_tokens``. Where the lengths came from is recorded in the
trace's metadata under ``output_lengths``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blendsim.errors import UserError
from blendsim.options import is_integer
from blendsim.traces.importers.builder import TraceBuilder, source_name, token_blocks
from blendsim.traces.importers.chat import PromptTokenizer
from blendsim.traces.importers.options import ImportOptions
from blendsim.traces.importers.reader import FileStats, Where, field_of, int_value, json_records
from blendsim.traces.trace import Trace

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
DEFAULT_BLOCK = 128  # the KV block of the vLLM-CPU engine blendsim runs (executor.vllm_engine.VLLM_ENGINE)


@dataclass(frozen=True)
class BatchLine:
    """One checked request line: where it is, its id, endpoint, body and ``max_tokens`` (None: not given)."""

    where: Where
    custom_id: str
    url: str
    body: dict[str, Any]
    max_tokens: int | None

    @property
    def is_chat(self) -> bool:
        return self.url == CHAT_URL


def custom_id_of(where: Where, rec: dict[str, Any]) -> str:
    cid = rec.get("custom_id")
    if not isinstance(cid, str) or not cid:
        raise where.error("missing" if cid is None else "must be a non-empty string", "custom_id")
    return cid


def unique_custom_id(where: Where, rec: dict[str, Any], seen: dict[str, int]) -> str:
    """The line's ``custom_id``, not seen before (``seen``: id -> its line, updated)."""
    cid = custom_id_of(where, rec)
    if cid in seen:
        raise where.error(f"{cid!r} is also the id of line {seen[cid]}", "custom_id")
    seen[cid] = where.line
    return cid


def check_line(where: Where, rec: dict[str, Any]) -> BatchLine:
    """The line as a request; a UserError naming the line and field when it is not one."""
    cid = custom_id_of(where, rec)
    if rec.get("method") != "POST":
        raise where.error(f'must be "POST", got {rec.get("method")!r}', "method")
    url = rec.get("url")
    if url not in (CHAT_URL, COMPLETIONS_URL):
        raise where.error(
            f"{url!r}: blendsim plans generation requests, {CHAT_URL} or {COMPLETIONS_URL}", "url"
        )
    body = rec.get("body")
    if not isinstance(body, dict):
        raise where.error("missing" if body is None else "must be a JSON object", "body")
    if url == CHAT_URL:
        _check_messages(where, body.get("messages"))
    else:
        _check_prompt(where, body.get("prompt"))
    n = body.get("n")
    if n is not None and n != 1:
        raise where.error(f"{n!r}: one completion per request (n = 1) only", "body.n")
    key = (
        "max_completion_tokens"
        if url == CHAT_URL and body.get("max_completion_tokens") is not None
        else "max_tokens"
    )
    raw = body.get(key)
    max_tokens = None if raw is None else int_value(raw, where, f"body.{key}", minimum=1)
    return BatchLine(where, cid, str(url), body, max_tokens)


def _check_messages(where: Where, messages: Any) -> None:
    name = "body.messages"
    if not isinstance(messages, list) or not messages:
        raise where.error("missing" if messages is None else "must be a non-empty list", name)
    for k, m in enumerate(messages):
        at = f"{name}[{k}]"
        if not isinstance(m, dict):
            raise where.error("must be an object with role and content", at)
        if not isinstance(m.get("role"), str) or not m["role"]:
            raise where.error("missing or not a string", f"{at}.role")
        content = m.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            raise where.error("must be a string or a list of text parts", f"{at}.content")
        for j, part in enumerate(content):
            if not (
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            ):
                raise where.error('only text parts ({"type": "text", "text": ...})', f"{at}.content[{j}]")


def _check_prompt(where: Where, prompt: Any) -> None:
    if isinstance(prompt, str) and prompt:
        return
    if isinstance(prompt, list) and prompt and all(is_integer(t) for t in prompt):
        return
    raise where.error("must be one non-empty string or one list of token ids", "body.prompt")


def prompt_ids(line: BatchLine, tokenizer: PromptTokenizer) -> list[int]:
    """The prompt's token ids, as vLLM computes them (:mod:`.chat`)."""
    body = line.body
    if line.is_chat:
        ids = tokenizer.chat(
            body["messages"],
            add_generation_prompt=bool(body.get("add_generation_prompt", True)),
            continue_final=bool(body.get("continue_final_message", False)),
        )
    else:
        prompt = body["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else tokenizer.completion(prompt)
    if not ids:
        raise line.where.error("the prompt has no tokens", "body")
    return ids


# ---------------------------------------------------------------------- output lengths
def completion_tokens(path: str) -> dict[str, int]:
    """``custom_id`` -> ``usage.completion_tokens`` of every successful line of an output file."""
    lengths: dict[str, int] = {}
    for where, rec in json_records(path, "results file", FileStats(path)):
        cid = custom_id_of(where, rec)
        response = rec.get("response") or {}
        if (
            rec.get("error") is not None
            or not isinstance(response, dict)
            or response.get("status_code") != 200
        ):
            continue
        used = field_of(response, "body.usage.completion_tokens")
        lengths[cid] = int_value(used, where, "response.body.usage.completion_tokens", minimum=0)
    return lengths


@dataclass
class _Lengths:
    """Chooses each line's output length (module docstring) and counts where they came from."""

    opts: ImportOptions
    known: dict[str, int] | None = None
    estimated: int = 0
    from_max: int = 0
    defaulted: int = 0

    def __post_init__(self) -> None:
        if self.opts.lengths_from:
            self.known = completion_tokens(self.opts.lengths_from)

    def of(self, line: BatchLine, rec: dict[str, Any]) -> int:
        guess: int | None = None
        if self.known is not None:
            guess = self.known.get(line.custom_id)
        elif self.opts.length_field:
            guess = int_value(field_of(rec, self.opts.length_field), line.where, self.opts.length_field, 0)
        if guess is not None:
            self.estimated += 1
            cap = line.max_tokens
            return max(1, min(guess, cap) if cap is not None else guess)
        if line.max_tokens is not None:
            self.from_max += 1
            return line.max_tokens
        if self.opts.default_max_tokens is None:
            raise line.where.error(
                "missing, and no estimate: give --default-max-tokens N or an output-length estimate",
                "body.max_tokens",
            )
        self.defaulted += 1
        return self.opts.default_max_tokens

    def record(self) -> dict[str, Any]:
        source = "results" if self.known is not None else "field" if self.opts.length_field else "max_tokens"
        return {
            "source": source,
            "results_file": self.opts.lengths_from,
            "field": self.opts.length_field,
            "estimated": self.estimated,
            "from_max_tokens": self.from_max,
            "from_default_max_tokens": self.defaulted,
            "default_max_tokens": self.opts.default_max_tokens,
        }


def read_openai(path: str, opts: ImportOptions) -> Trace:
    if not opts.model_dir:
        raise UserError("an OpenAI batch is tokenized with the model's tokenizer: give --model-dir DIR")
    tokenizer = PromptTokenizer(opts.model_dir)
    block = opts.block(DEFAULT_BLOCK)
    lengths = _Lengths(opts)
    stats = FileStats(path)
    builder = TraceBuilder(source_name(path, opts.source), with_custom_ids=True)
    seen: dict[str, int] = {}
    kinds = {"chat": 0, "completion": 0}
    for where, rec in json_records(path, "batch file", stats, opts.progress):
        unique_custom_id(where, rec, seen)
        line = check_line(where, rec)
        seg_ids, seg_lens = token_blocks(prompt_ids(line, tokenizer), block)
        builder.add(seg_lens, lengths.of(line, rec), seg_ids, custom_id=line.custom_id)
        kinds["chat" if line.is_chat else "completion"] += 1
    meta = {
        "imported": {
            "format": "openai",
            **stats.as_dict(),
            "block_size": block,
            "tokenizer": opts.model_dir,
            "endpoints": kinds,
        },
        "output_lengths": lengths.record(),
    }
    return builder.build(meta)
