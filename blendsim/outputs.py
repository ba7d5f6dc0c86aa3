"""Everything a verb writes goes through here: paths checked once, at the CLI edge, and outputs that
appear whole or not at all (docs/cli.md).

* A file (``-o``, ``--order-out``): :func:`output_file` checks the path before any work (a name, not
  a folder, not a device or anything but a regular file, a writable folder, not one of the inputs);
  :func:`atomic_output` / :func:`atomic_outputs` write beside it and rename into place on success.
* A folder (``--out``) of a verb that runs once (simulate, execute): :func:`output_folder` stages
  every file in a hidden sibling and renames it into place when the verb succeeds, so the outputs
  appear together; a failure or a Ctrl-C removes the sibling and leaves ``--out`` as it was.
* A folder of a resumable verb (sweep, figures, validate): :func:`resumable_folder` works in place
  under a manifest that records the run's identity and its finished parts; a rerun of the same
  command resumes, a fresh run that fails before finishing a part leaves nothing.

An existing non-empty ``--out`` is refused unless its manifest says the same verb wrote it. Every
manifest and JSON output records its provenance (:mod:`blendsim.provenance`); JSON never holds NaN
or infinities (:func:`jsonable`: they become null).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blendsim.errors import UserError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "blendsim-output/1"
_STAGING = ".partial-"  # infix of the hidden sibling a folder is staged in


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
        fd, probe = tempfile.mkstemp(prefix=".blendsim-probe-", dir=folder)
    except OSError as exc:
        raise UserError(f"{flag} {text!r}: cannot write in folder {str(folder)!r} ({_reason(exc)})") from None
    os.close(fd)
    os.unlink(probe)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
                fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
            except FileNotFoundError:
                raise UserError(
                    f"cannot write {str(target)!r}: folder {str(parent)!r} does not exist"
                ) from None
            except OSError as exc:
                raise UserError(f"cannot write {str(target)!r} ({_reason(exc)})") from None
            os.close(fd)
            temps.append(Path(name))
            temps[-1].chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        try:
            yield temps
            for temp, target in zip(temps, targets, strict=True):
                os.replace(temp, target)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EISDIR):
                raise
            raise UserError(f"cannot write {str(targets[0])!r} ({_reason(exc)})") from None
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`atomic_outputs` of one file."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


# ---------------------------------------------------------------------- folders
def folder_path(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as an absolute output folder (a link followed): not empty, not a file, no file among
    its parents. Absolute, so ``.`` has a name and a parent to stage beside."""
    text = os.fspath(path)
    if not text.strip():
        raise UserError(f"{flag} needs a folder name, got an empty one")
    d = Path(os.path.realpath(text) if os.path.islink(text) else os.path.abspath(text))
    for p in (d, *d.parents):
        if p.exists() and not p.is_dir():
            what = "exists and is not a folder" if p == d else f"lies under {str(p)!r}, which is a file"
            raise UserError(f"{flag} {text!r} {what}")
    return d


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of an output folder, or None (none, unreadable, or not a blendsim manifest)."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def _check_reusable(d: Path, flag: str, verb: str) -> dict[str, Any] | None:
    """An existing ``d`` may hold outputs only when it is empty (None) or ``verb``'s own (its manifest)."""
    if not d.exists() or not any(d.iterdir()):
        return None
    manifest = read_manifest(d)
    if manifest is None:
        shown = ", ".join(sorted(p.name for p in d.iterdir())[:3])
        raise UserError(
            f"{flag} {str(d)!r} already holds files that no `blendsim {verb}` wrote ({shown}, ...); "
            "give a new or empty folder"
        )
    if manifest.get("verb") != verb:
        raise UserError(
            f"{flag} {str(d)!r} holds the outputs of `blendsim {manifest.get('verb')}`, not of "
            f"`blendsim {verb}`; give another folder"
        )
    return manifest


def _manifest(verb: str, complete: bool, record: Mapping[str, Any], **rest: Any) -> dict[str, Any]:
    from blendsim.provenance import provenance

    return {
        "format": MANIFEST_FORMAT,
        "verb": verb,
        "complete": complete,
        "provenance": provenance(**record),
        **rest,
    }


@dataclass
class OutputFolder:
    """A verb's output folder while it runs: write into ``work``, name ``path`` in messages.
    ``record`` holds the provenance fields (``seed``, ``profile``) the manifest records."""

    path: Path
    work: Path
    verb: str
    record: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def output_folder(path: str | os.PathLike[str], flag: str, verb: str) -> Iterator[OutputFolder]:
    """The folder of a verb that runs once (module docstring): outputs staged in a hidden sibling
    and renamed to ``path`` when the block succeeds (an earlier run of ``verb`` there is replaced);
    on any error or Ctrl-C nothing changes at ``path``. Checked on entry: see :func:`folder_path`,
    and an existing non-empty folder must be ``verb``'s own earlier output."""
    d = folder_path(path, flag)
    _check_reusable(d, flag, verb)
    made = _create(d.parent, flag, os.fspath(path))
    try:
        work = _staging(d, flag, os.fspath(path))
        folder = OutputFolder(d, work, verb)
        try:
            yield folder
            files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
            write_json(work / MANIFEST, _manifest(verb, True, folder.record, files=files))
            work.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the usual permissions
            with _no_interrupt():
                _move_into_place(work, d)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def _staging(d: Path, flag: str, text: str) -> Path:
    """A new hidden folder beside ``d``, or inside it when ``d`` exists and its parent takes no new
    folder (a mount point under a read-only parent, say)."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{d.name}{_STAGING}", dir=d.parent))
    except OSError as exc:
        if d.is_dir() and os.access(d, os.W_OK | os.X_OK):
            return Path(tempfile.mkdtemp(prefix=_STAGING, dir=d))
        raise UserError(f"{flag} {text!r}: cannot write in {str(d.parent)!r} ({_reason(exc)})") from None


def _create(d: Path, flag: str, text: str) -> Path | None:
    """Create the folder ``d`` and its missing parents; the topmost one created (None: ``d`` existed)."""
    missing = [p for p in (d, *d.parents) if not p.exists()]
    if not missing:
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {text!r}: cannot create {str(missing[-1])!r} ({_reason(exc)})") from None
    return missing[-1]


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C back for a few renames that must happen together (delivered right after)."""
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


def _move_into_place(work: Path, d: Path) -> None:
    """Rename ``work`` to ``d`` when ``d`` is missing (one atomic step). An existing ``d`` (empty, an
    earlier run of the verb, also the working folder or a mount point, which cannot be renamed) gets
    the new entries renamed into it, its old ones first moved aside inside it and then removed; the
    caller removes ``work``."""
    if not d.exists():
        os.replace(work, d)
        return
    aside = Path(tempfile.mkdtemp(prefix=".old-", dir=d))
    for p in list(d.iterdir()):
        if p not in (aside, work):  # the staging may lie inside d (see _staging)
            os.replace(p, aside / p.name)
    for p in list(work.iterdir()):
        os.replace(p, d / p.name)
    shutil.rmtree(aside, ignore_errors=True)


@dataclass
class ResumableFolder:
    """A resumable verb's folder (:func:`resumable_folder`): ``path`` is written in place; ``parts``
    maps each finished part to what the verb recorded about it; ``complete`` is what the manifest
    says when the verb returns (a verb with failed parts sets it False)."""

    path: Path
    verb: str
    identity: dict[str, Any]
    parts: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)
    complete: bool = True

    def earlier(self, part: str) -> Path | None:
        """The file ``path / part`` when an earlier run finished that part and it is still there."""
        kept = self.path / part
        return kept if self.parts.get(part) and kept.is_file() else None

    def finished(self, part: str, info: Any = True) -> None:
        """Record ``part`` as finished (its files are written), with ``info`` (JSON)."""
        self.parts[part] = info
        self._save(complete=False)

    def _save(self, complete: bool) -> None:
        write_json(
            self.path / MANIFEST,
            _manifest(self.verb, complete, self.record, identity=self.identity, parts=self.parts),
            indent=1,
            sort_keys=True,
        )


@contextlib.contextmanager
def resumable_folder(
    path: str | os.PathLike[str] | ResumableFolder, flag: str, verb: str, identity: Mapping[str, Any]
) -> Iterator[ResumableFolder]:
    """The in-place folder of a resumable verb (module docstring). On entry: a missing or empty
    folder starts a fresh run; one whose manifest is ``verb``'s with the same ``identity`` resumes
    (its parts are kept); anything else is a UserError naming what differs. On exit the manifest says
    whether the run completed; a failed fresh run with no finished part removes what it created.
    ``path`` may be a folder its caller has open already (a verb's CLI opens it to name its flag in
    messages, the library function it calls opens it again): that folder, unchanged."""
    if isinstance(path, ResumableFolder):
        yield path
        return
    d = folder_path(path, flag)
    manifest = _check_reusable(d, flag, verb)
    ident = jsonable(dict(identity))
    parts: dict[str, Any] = {}
    if manifest is not None:
        theirs = manifest.get("identity") or {}
        diff = [k for k in sorted(set(ident) | set(theirs)) if ident.get(k) != theirs.get(k)]
        if diff:
            shown = "; ".join(f"{k} {theirs.get(k)!r} there, {ident.get(k)!r} now" for k in diff[:3])
            raise UserError(
                f"{flag} {str(d)!r} holds a `blendsim {verb}` run with other settings ({shown}); "
                "use another folder, or delete that one to start over"
            )
        parts = dict(manifest.get("parts") or {})
    made = _create(d, flag, os.fspath(path))
    if not os.access(d, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {os.fspath(path)!r} is not writable")
    folder = ResumableFolder(d, verb, ident, parts)
    try:
        folder._save(complete=False)
        yield folder
    except BaseException:
        if folder.parts:
            print(
                f"blendsim: {len(folder.parts)} finished part(s) kept in {d}; "
                "rerun the same command to resume",
                file=sys.stderr,
            )
        elif made is not None:
            shutil.rmtree(made, ignore_errors=True)
        elif manifest is None:  # it was empty: leave it so
            _empty(d)
        raise
    folder._save(complete=folder.complete)


def _empty(d: Path) -> None:
    """Remove what a failed run wrote in ``d`` (it was empty before)."""
    for p in d.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
