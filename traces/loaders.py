"""Read (input, output) token lengths from real request traces, gzip-compressed or not.

Recognised CSV shapes (by header):
  * BurstGPT:                       ``Request tokens``, ``Response tokens``
  * Azure LLM inference trace:      ``ContextTokens``, ``GeneratedTokens``
  * plain:                          ``input_tokens``, ``output_tokens``
Other columns are ignored. Rows with a zero count (BurstGPT records failed requests with 0 response
tokens) are skipped; a missing, non-integer, negative or beyond-int32 value is a UserError naming
file, row and column, and a corrupt or truncated gzip file is one saying it is not a valid gzip file.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterator

import numpy as np

from blendsim.errors import UserError
from blendsim.limits import INT32_MAX

FORMATS: dict[str, tuple[str, str]] = {
    "burstgpt": ("Request tokens", "Response tokens"),
    "azure": ("ContextTokens", "GeneratedTokens"),
    "plain": ("input_tokens", "output_tokens"),
}


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_text(path: str) -> io.TextIOBase:
    if not os.path.exists(path):
        raise UserError(f"lengths file {path!r} does not exist")
    try:
        if _is_gzip(path):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UserError(f"lengths file {path!r} is not readable: {exc.strerror or exc}") from None


def _rows(path: str) -> Iterator[list[str]]:
    fh = _open_text(path)
    try:
        yield from csv.reader(fh)
    except (OSError, EOFError, zlib.error) as exc:  # gzip's own errors: a corrupt or truncated file
        raise _not_gzip(path, exc) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"lengths file {path!r} is not a readable CSV: {exc}") from None
    finally:
        fh.close()


def _not_gzip(path: str, exc: BaseException) -> UserError:
    return UserError(f"lengths file {path!r} is not a valid gzip file ({exc})")


def _gzip_problem(path: str) -> BaseException | None:
    """Why the gzip file ``path`` does not decompress to its end (None: it does)."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return exc
    return None


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
    if value > INT32_MAX:
        raise UserError(
            f"lengths file {path!r} row {row} column {column!r}: {cell} tokens is beyond int32 ({INT32_MAX})"
        )
    return int(value)


def load_lengths(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input tokens, output tokens) of every request with both counts positive, in file order.
    A gzip file is read as it decompresses; when a row fails to parse, a corrupt gzip (it checks
    its data only at the end) is reported as that, not as the garbage row it produced."""
    p = os.fspath(path)
    try:
        return _load(p)
    except UserError:
        if os.path.isfile(p) and _is_gzip(p) and (problem := _gzip_problem(p)) is not None:
            raise _not_gzip(p, problem) from None
        raise


def _load(p: str) -> tuple[np.ndarray, np.ndarray]:
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
