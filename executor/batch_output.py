"""The results file of a batch run: OpenAI Batch output lines, appended one whole line at a time.

A line is ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``. A
success has status 200, a ``chat.completion`` (or ``text_completion``) body with ``choices`` and
``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``,
``prompt_tokens_details.cached_tokens``: the prompt tokens vLLM's prefix cache served) and
``error`` null; a refused request has status 400, no body and ``error: {"code", "message"}``.

Resuming: :meth:`ResultsFile.open` reads what an earlier run left, drops a last line cut short by
a kill (no newline at its end), and knows every ``custom_id`` done; new lines go out with one
``write`` each on an ``O_APPEND`` descriptor, so a ``kill -9`` leaves whole lines and, at worst, one
partial line that the next run drops. A ``custom_id`` twice in the file, or one the batch does not
have, is an error: the file belongs to another batch.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from blendsim.errors import UserError


def _uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def success_line(
    custom_id: str, chat: bool, model: str, text: str, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    body = {
        "id": _uid("chatcmpl-" if chat else "cmpl-"),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }
    response = {"status_code": 200, "request_id": _uid("req_"), "body": body}
    return {"id": _uid("batch_req_"), "custom_id": custom_id, "response": response, "error": None}


def usage_of(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def error_line(custom_id: str, message: str, code: str = "invalid_request") -> dict[str, Any]:
    response = {"status_code": 400, "request_id": _uid("req_"), "body": None}
    return {
        "id": _uid("batch_req_"),
        "custom_id": custom_id,
        "response": response,
        "error": {"code": code, "message": message},
    }


@dataclass
class ResultsFile:
    """The output file of a run: what is in it, and the appender."""

    path: str
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom_id -> its line
    dropped_partial: bool = False
    _fd: int | None = None

    @classmethod
    def open(cls, path: str, batch_ids: set[str]) -> ResultsFile:
        """Read what an earlier run left (module docstring) and open the file for appending."""
        out = cls(path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UserError(f"output directory {parent!r} does not exist")
        if os.path.exists(path):
            out._read_existing(batch_ids)
        try:
            out._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"results file {path!r} is not writable: {exc.strerror}") from None
        return out

    def _read_existing(self, batch_ids: set[str]) -> None:
        with open(self.path, "rb") as fh:
            data = fh.read()
        keep = data.rfind(b"\n") + 1  # whole lines only
        if keep < len(data):
            self.dropped_partial = True
            os.truncate(self.path, keep)
        for number, raw in enumerate(data[:keep].splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                cid = rec["custom_id"]
            except (ValueError, KeyError, TypeError):
                raise UserError(
                    f"results file {self.path!r} line {number} is not a batch output line"
                ) from None
            if cid in self.done:
                raise UserError(f"results file {self.path!r} line {number}: custom_id {cid!r} is there twice")
            if cid not in batch_ids:
                raise UserError(
                    f"results file {self.path!r} line {number}: custom_id {cid!r} is not in the batch; "
                    "it holds another batch's results (give another -o)"
                )
            self.done[cid] = rec

    def append(self, line: dict[str, Any]) -> None:
        """One whole line, one ``write``."""
        assert self._fd is not None, "open() first"
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):  # a regular file takes it whole; anything else is a broken disk
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        self.done[line["custom_id"]] = line

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
