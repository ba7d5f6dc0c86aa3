"""A batch file as the driver runs it: each line's prompt token ids and ``SamplingParams``, or why it
cannot run.

Lines are read and checked as the importer reads them (:func:`blendsim.traces.importers.openai.check_line`,
tokenized by :func:`~blendsim.traces.importers.openai.prompt_ids`, so the prompt vLLM runs is the one
blendsim planned). A line that is not a JSON object with a ``custom_id`` stops the run before it
starts (no output line could name it); any other problem becomes that line's error line and the batch
goes on: a malformed body, a body field blendsim's runner does not serve (tools, structured output,
logprobs, streaming, ``n > 1``), a prompt plus ``max_tokens`` beyond the model's context, or a request
longer than the whole KV cache. ``max_tokens`` left out means what vLLM makes of it: the rest of the
model's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.traces.importers.builder import TraceBuilder, token_blocks
from blendsim.traces.importers.chat import PromptTokenizer
from blendsim.traces.importers.openai import BatchLine, check_line, prompt_ids, unique_custom_id
from blendsim.traces.importers.reader import FileStats, Where, json_records
from blendsim.traces.trace import Trace

# body fields passed to SamplingParams as they are (vLLM's chat and completion requests take the same)
SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "min_tokens",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "skip_special_tokens",
    "include_stop_str_in_output",
)
# body fields that would change what is served in ways this runner does not do
UNSUPPORTED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "logit_bias",
    "top_logprobs",
    "echo",
    "suffix",
    "structured_outputs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "prompt_logprobs",
)


@dataclass
class BatchFeed:
    """The runnable lines of a batch file, in file order (positions ``0..n-1`` of ``trace``), and the
    refused ones (``errors``: custom_id -> message). ``file_index[k]``: request ``k``'s rank among the
    file's lines (what a plan's pacing counts)."""

    trace: Trace
    lines: list[BatchLine]
    prompts: list[np.ndarray]
    params: list[dict[str, Any]]
    file_index: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)
    all_ids: set[str] = field(default_factory=set)
    forced_lengths: bool = False

    def prompt(self, pos: int) -> list[int]:
        return self.prompts[pos].tolist()  # type: ignore[no-any-return]

    def sampling(self, pos: int) -> dict[str, Any]:
        return dict(self.params[pos])

    def subset(self, positions: np.ndarray) -> BatchFeed:
        """The requests at ``positions`` (a resumed run's remaining ones), renumbered from 0."""
        idx = [int(p) for p in positions]
        return BatchFeed(
            self.trace.subset(np.asarray(idx, dtype=np.int64)),
            [self.lines[i] for i in idx],
            [self.prompts[i] for i in idx],
            [self.params[i] for i in idx],
            self.file_index[idx],
            dict(self.errors),
            set(self.all_ids),
        )


def sampling_params(line: BatchLine, prompt_len: int, context: int) -> dict[str, Any]:
    """SamplingParams arguments of a line; a UserError names what it asks that cannot be served."""
    body = line.body
    asked = [k for k in UNSUPPORTED if body.get(k) not in (None, False, [], {})]
    if body.get("stream"):
        asked.append("stream")
    if body.get("logprobs"):
        asked.append("logprobs")
    if (body.get("best_of") or 1) > 1:
        asked.append("best_of")
    if asked:
        raise line.where.error(f"not served by blendsim run-batch: {', '.join(asked)}", "body")
    max_tokens = line.max_tokens if line.max_tokens is not None else context - prompt_len
    if prompt_len + max_tokens > context:
        raise line.where.error(
            f"the model's context is {context} tokens; the prompt has {prompt_len} and max_tokens asks "
            f"{max_tokens} more",
            "body",
        )
    params = {k: body[k] for k in SAMPLING_FIELDS if body.get(k) is not None}
    params["max_tokens"] = max_tokens
    return params


def read_batch(
    path: str, tokenizer: PromptTokenizer, block_size: int, context: int, kv_tokens: int
) -> BatchFeed:
    """Every line of ``path``: the runnable ones as requests, the others as errors (module docstring)."""
    builder = TraceBuilder("batch", with_custom_ids=True)
    lines: list[BatchLine] = []
    prompts: list[np.ndarray] = []
    params: list[dict[str, Any]] = []
    file_index: list[int] = []
    errors: dict[str, str] = {}
    seen: dict[str, int] = {}
    for rank, (where, rec) in enumerate(json_records(path, "batch file", FileStats(path))):
        cid = unique_custom_id(where, rec, seen)
        try:
            line = check_line(where, rec)
            ids = np.asarray(prompt_ids(line, tokenizer), dtype=np.int64)
            sp = sampling_params(line, len(ids), context)
            _check_kv(where, len(ids) + sp["max_tokens"], block_size, kv_tokens)
        except UserError as exc:
            errors[cid] = str(exc)
            continue
        seg_ids, seg_lens = token_blocks(ids, block_size)
        builder.add(seg_lens, sp["max_tokens"], seg_ids, custom_id=cid)
        lines.append(line)
        prompts.append(ids)
        params.append(sp)
        file_index.append(rank)
    if not lines:  # nothing runs: an empty trace, every line an error line
        trace = Trace.from_requests([])
        trace.custom_id = np.zeros(0, dtype=object)
    else:
        trace = builder.build({"batch": path})
    return BatchFeed(trace, lines, prompts, params, np.asarray(file_index, dtype=np.int64), errors, set(seen))


def _check_kv(where: Where, tokens: int, block_size: int, kv_tokens: int) -> None:
    need = -(-tokens // block_size) * block_size
    if need > kv_tokens:
        raise where.error(
            f"needs {need} KV tokens at most, more than the whole KV cache ({kv_tokens})", "body"
        )
