"""Read (input, output) token lengths from real request traces, gzip-compressed or not.

Recognised CSV shapes (by header):
  * BurstGPT:                       ``Request tokens``, ``Response tokens``
  * Azure LLM inference trace:      ``ContextTokens``, ``GeneratedTokens``
  * plain:                          ``input_tokens``, ``output_tokens``
Other columns are ignored. Rows with a zero count (BurstGPT records failed requests with 0 response
tokens) are skipped; a missing, non-integer or negative value is a UserError naming file, row and
column.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator

import numpy as np

from blendsim.errors import UserError

FORMATS: dict[str, tuple[str, str]] = {
    "burstgpt": ("Request tokens", "Response tokens"),
    "azure": ("ContextTokens", "GeneratedTokens"),
    "plain": ("input_tokens", "output_tokens"),
}


def _open_text(path: str) -> io.TextIOBase:
    if not os.path.exists(path):
        raise UserError(f"lengths file {path!r} does not exist")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic == b"\x1f\x8b":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UserError(f"lengths file {path!r} is not readable: {exc.strerror or exc}") from None


def _rows(path: str) -> Iterator[list[str]]:
    fh = _open_text(path)
    try:
        yield from csv.reader(fh)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"lengths file {path!r} is not a readable CSV: {exc}") from None
    finally:
        fh.close()


def _columns(header: list[str], path: str) -> tuple[int, int, tuple[str, str]]:
    names = [h.strip() for h in header]
    for cols in FORMATS.values():
        if all(c in names for c in cols):
            return names.index(cols[0]), names.index(cols[1]), cols
    valid = "; ".join(f"{k}: {a!r},{b!r}" for k, (a, b) in FORMATS.items())
    raise UserError(
        f"lengths file {path!r} lacks the length columns (header: {','.join(names)}); expected one of {valid}"
    )


def _value(cell: str, path: str, row: int, column: str) -> int:
    try:
        value = float(cell)
    except ValueError:
        raise UserError(
            f"lengths file {path!r} row {row} column {column!r}: {cell!r} is not a token count"
        ) from None
    if not np.isfinite(value) or value < 0 or value != int(value):
        raise UserError(f"lengths file {path!r} row {row} column {column!r}: {cell!r} is not a token count")
    return int(value)


def load_lengths(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input tokens, output tokens) of every request with both counts positive, in file order."""
    p = os.fspath(path)
    rows = _rows(p)
    header = next(rows, None)
    if header is None:
        raise UserError(f"lengths file {p!r} is empty")
    i_in, i_out, (c_in, c_out) = _columns(header, p)
    inputs: list[int] = []
    outputs: list[int] = []
    need = max(i_in, i_out)
    for line, row in enumerate(rows, start=2):  # row numbers as in the file, header = row 1
        if not row:
            continue
        if len(row) <= need:
            missing = c_in if len(row) <= i_in else c_out
            raise UserError(f"lengths file {p!r} row {line} column {missing!r}: value is missing")
        a, b = _value(row[i_in], p, line, c_in), _value(row[i_out], p, line, c_out)
        if a > 0 and b > 0:
            inputs.append(a)
            outputs.append(b)
    if not inputs:
        raise UserError(f"lengths file {p!r} has no request with positive {c_in!r} and {c_out!r}")
    return np.asarray(inputs, dtype=np.int64), np.asarray(outputs, dtype=np.int64)
