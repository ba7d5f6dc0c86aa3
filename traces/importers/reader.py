"""Streaming records out of a trace or batch file: lines, JSON objects or CSV rows, each with its line
number, gzip or not, with a progress bar over the bytes read.

Nothing here holds more than one line at a time, so a file of any size is read in bounded memory.
Every problem is a :class:`UserError` that names the file, the line and, where there is one, the
field (``batch.jsonl line 7, field 'body.max_tokens': -1 is not an integer >= 1``); importers raise
them through :meth:`Where.error`. The file's SHA-256 and size come out with the records, for the
trace's metadata.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from blendsim.errors import UserError

PROGRESS_EVERY = 4096  # lines between progress-bar updates


@dataclass(frozen=True)
class Where:
    """A line of a file, for error messages."""

    path: str
    line: int

    def error(self, problem: str, field: str | None = None) -> UserError:
        at = f", field {field!r}" if field else ""
        return UserError(f"{self.path} line {self.line}{at}: {problem}")


@dataclass
class FileStats:
    """What was read: bytes, lines and the SHA-256 of the file as stored (compressed or not)."""

    path: str
    size: int = 0
    lines: int = 0
    sha256: str = ""
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": os.path.basename(self.path),
            "bytes": self.size,
            "lines": self.lines,
            "sha256": self.sha256,
        }


class _HashingReader(io.RawIOBase):
    """A binary file that hashes what is read from it (the bytes as stored)."""

    def __init__(self, raw: IO[bytes], stats: FileStats) -> None:
        self.raw, self.stats = raw, stats

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.stats._hash.update(memoryview(buffer)[:n])
        return int(n or 0)


def lines(path: str, what: str, stats: FileStats, progress: bool = False) -> Iterator[tuple[int, str]]:
    """``(line number, text without its newline)`` of every line of ``path`` (1-based), decoded as UTF-8;
    ``stats`` is filled in as the file is read (its hash once the last line is out)."""
    if not os.path.exists(path):
        raise UserError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{what} {path!r} is a directory")
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise UserError(f"{what} {path!r} is not readable: {exc.strerror or exc}") from None
    stats.size = os.fstat(raw.fileno()).st_size
    hashed = io.BufferedReader(_HashingReader(raw, stats))
    bar = _bar(stats.size, os.path.basename(path), progress)
    try:
        body: Iterator[bytes] = gzip.GzipFile(fileobj=hashed) if hashed.peek(2)[:2] == b"\x1f\x8b" else hashed
        for number, data in enumerate(body, start=1):
            stats.lines = number
            if bar is not None and number % PROGRESS_EVERY == 0:
                bar.update(raw.tell() - bar.n)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Where(path, number).error(
                    f"not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None
            yield number, text.rstrip("\r\n")
        stats.sha256 = stats._hash.hexdigest()
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise UserError(f"{what} {path!r} is not readable: {exc}") from None
    finally:
        if bar is not None:
            bar.update(max(raw.tell() - bar.n, 0))
            bar.close()
        raw.close()


def json_records(
    path: str, what: str, stats: FileStats, progress: bool = False
) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Every non-blank line of a JSONL file as a JSON object, with where it is."""
    for number, text in lines(path, what, stats, progress):
        if not text.strip():
            continue
        where = Where(path, number)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise where.error(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise where.error(f"a record must be a JSON object, got {type(obj).__name__}")
        yield where, obj


def csv_records(
    path: str, what: str, stats: FileStats, required: tuple[str, ...], progress: bool = False
) -> Iterator[tuple[Where, dict[str, str]]]:
    """Every data row of a CSV file with a header, as {column: text}; the header must name every
    ``required`` column."""
    stream = lines(path, what, stats, progress)
    first = next(stream, None)
    if first is None:
        raise UserError(f"{what} {path!r} is empty")
    header = [h.strip() for h in next(csv.reader([first[1]]))]
    missing = [c for c in required if c not in header]
    if missing:
        raise Where(path, 1).error(
            f"the header ({','.join(header)}) lacks column(s) {', '.join(missing)}; "
            f"this format needs {', '.join(required)}"
        )
    for number, text in stream:
        if not text.strip():
            continue
        try:
            row = next(csv.reader([text]))
        except csv.Error as exc:
            raise Where(path, number).error(f"not a CSV row ({exc})") from None
        if len(row) != len(header):
            raise Where(path, number).error(f"{len(row)} values for the header's {len(header)} columns")
        yield Where(path, number), dict(zip(header, row, strict=True))


def _bar(total: int, name: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=f"import {name}", leave=False, mininterval=0.5)


# ---------------------------------------------------------------------- fields
def field_of(record: dict[str, Any], name: str) -> Any:
    """``record[a][b]...`` for a dotted ``name`` (``"body.max_tokens"``); None where a part is missing."""
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def int_value(value: Any, where: Where, name: str, minimum: int = 0) -> int:
    """``value`` as an integer >= ``minimum`` (an integral float or numeric text is accepted)."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    ok = (
        isinstance(number, (int, float))
        and not isinstance(number, bool)
        and number == number  # not NaN
        and abs(number) != float("inf")
        and number == int(number)
        and int(number) >= minimum
    )
    if not ok:
        shown = "missing" if value is None or value == "" else f"{value!r} is not an integer >= {minimum}"
        raise where.error(shown, name)
    return int(number)
