"""Everything a verb writes goes through here and :mod:`blendsim.output_folders`: paths checked
once, at the CLI edge, and outputs that appear whole or not at all (docs/cli.md).

* A file (``-o``, ``--order-out``): :func:`output_file` checks the path before any work (a name, not
  a folder, not a device or anything but a regular file, a writable folder, not one of the inputs);
  :func:`atomic_output` / :func:`atomic_outputs` write beside it and rename into place on success.
* JSON never holds NaN or infinities (:func:`jsonable`: they become null); :func:`write_json` writes
  it atomically.
* Folders (``--out``): :mod:`blendsim.output_folders`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from blendsim.errors import UserError


# ---------------------------------------------------------------------- JSON
def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars and arrays as numbers and lists, NaN and infinities as
    None (null), tuples as lists, keys as strings, paths as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return jsonable(tolist())
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_text(value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON of :func:`jsonable` ``value`` (never ``NaN`` or ``Infinity``)."""
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(
    path: str | os.PathLike[str], value: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """``value`` as strict JSON in ``path``, written atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(value, indent=indent, sort_keys=sort_keys) + "\n")
    return Path(path)


# ---------------------------------------------------------------------- files
def output_file(
    path: str | os.PathLike[str], flag: str, *, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """The file ``path`` that ``flag`` names, checked before any work: a UserError naming the path
    when it is empty, ends in a separator, exists as anything but a regular file, is one of the
    ``inputs``, or lies in a folder that is missing or cannot take a new file. A symbolic link is
    followed: its target is what gets written."""
    text = os.fspath(path)
    if not text.strip():
        raise UserError(f"{flag} needs a file name, got an empty one")
    if text.endswith(("/", os.sep)):
        raise UserError(f"{flag} {text!r} names a folder (it ends with '/'); give a file name")
    target = Path(os.path.realpath(text)) if os.path.islink(text) else Path(text)
    if target.exists() and not target.is_file():
        raise UserError(
            f"{flag} {text!r} exists and is {_kind(target)}, not a regular file; give a file name"
        )
    for source in inputs:
        if target.exists() and os.path.exists(source) and os.path.samefile(target, source):
            raise UserError(f"{flag} {text!r} is also an input of this command; give another file name")
    _check_can_create_in(target.parent if str(target.parent) else Path("."), flag, text)
    return target


def _kind(p: Path) -> str:
    if p.is_dir():
        return "a folder"
    if p.is_char_device() or p.is_block_device():
        return "a device"
    if p.is_fifo():
        return "a named pipe"
    if p.is_socket():
        return "a socket"
    return "not a regular file"


def _check_can_create_in(folder: Path, flag: str, text: str) -> None:
    """``folder`` exists and a file can be created in it (tried: permissions alone do not tell for
    /proc, /sys or a read-only mount)."""
    for p in (folder, *folder.parents):
        if p.exists() and not p.is_dir():
            raise UserError(f"{flag} {text!r}: {str(p)!r} is a file, not a folder")
    if not folder.is_dir():
        raise UserError(f"{flag} {text!r}: folder {str(folder)!r} does not exist")
    try:
        with held_interrupts():  # the probe never outlives this check
            fd, probe = tempfile.mkstemp(prefix=".blendsim-probe-", dir=folder)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"{flag} {text!r}: cannot write in folder {str(folder)!r} ({os_reason(exc)})"
        ) from None


def os_reason(exc: OSError) -> str:
    """The few words an OSError says (its strerror), for one-line messages."""
    return exc.strerror or type(exc).__name__


def umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C back (it is delivered right after the block) for a few steps that must happen
    together: renames that replace outputs, a file created and recorded for its cleanup."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of ``paths``; move them all into place only if the block
    succeeds, else remove them: no half-written output file is left behind on any error or Ctrl-C.
    A failure of the file system itself (disk full, read-only) is a UserError naming the path."""
    targets = [Path(os.path.realpath(p)) if os.path.islink(p) else Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            parent = target.parent if str(target.parent) else Path(".")
            try:
                with held_interrupts():  # created and recorded for the cleanup together
                    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
                    temps.append(Path(name))
            except FileNotFoundError:
                raise UserError(
                    f"cannot write {str(target)!r}: folder {str(parent)!r} does not exist"
                ) from None
            except OSError as exc:
                raise UserError(f"cannot write {str(target)!r} ({os_reason(exc)})") from None
            os.close(fd)
            temps[-1].chmod(0o666 & ~umask())  # mkstemp makes 0600; outputs get the usual permissions
        try:
            yield temps
            with held_interrupts():
                for temp, target in zip(temps, targets, strict=True):
                    os.replace(temp, target)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EISDIR):
                raise
            raise UserError(f"cannot write {str(targets[0])!r} ({os_reason(exc)})") from None
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`atomic_outputs` of one file."""
    with atomic_outputs(path) as (tmp,):
        yield tmp
