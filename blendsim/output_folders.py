"""Output folders (``--out``), written whole or not at all (docs/cli.md); files and JSON are
:mod:`blendsim.outputs`.

* A folder of a verb that runs once (simulate, execute): :func:`output_folder` stages every file in
  a hidden sibling and renames it into place when the verb succeeds, so the outputs appear together;
  a failure or a Ctrl-C removes the sibling and leaves ``--out`` as it was.
* A folder of a resumable verb (sweep, figures, validate): :func:`resumable_folder` works in place
  under a manifest that records the run's identity and its finished parts; a rerun of the same
  command resumes, a fresh run that fails before finishing a part leaves nothing.

An existing non-empty ``--out`` is refused unless its manifest says the same verb wrote it. Every
manifest records its provenance (:mod:`blendsim.provenance`), which covers the folder's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blendsim.errors import UserError
from blendsim.outputs import held_interrupts, jsonable, os_reason, umask, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "blendsim-output/1"
_STAGING = ".partial-"  # infix of the hidden sibling a folder is staged in


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
        names = sorted(p.name for p in d.iterdir())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UserError(
            f"{flag} {str(d)!r} already holds files that no `blendsim {verb}` wrote ({shown}); "
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
    made: Path | None = None  # the topmost parent this call created
    work: Path | None = None
    done = False
    try:
        with held_interrupts():  # what is created is also recorded, for the cleanup below
            made = _create(d.parent, flag, os.fspath(path))
            work = _staging(d, flag, os.fspath(path))
        folder = OutputFolder(d, work, verb)
        yield folder
        files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
        write_json(work / MANIFEST, _manifest(verb, True, folder.record, files=files))
        work.chmod(0o777 & ~umask())  # mkdtemp makes 0700; outputs get the usual permissions
        with held_interrupts():
            _move_into_place(work, d)
            done = True
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        if made is not None and not done:
            shutil.rmtree(made, ignore_errors=True)


def _staging(d: Path, flag: str, text: str) -> Path:
    """A new hidden folder beside ``d``, or inside it when ``d`` exists and its parent takes no new
    folder (a mount point under a read-only parent, say)."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{d.name}{_STAGING}", dir=d.parent))
    except OSError as exc:
        if d.is_dir() and os.access(d, os.W_OK | os.X_OK):
            return Path(tempfile.mkdtemp(prefix=_STAGING, dir=d))
        raise UserError(f"{flag} {text!r}: cannot write in {str(d.parent)!r} ({os_reason(exc)})") from None


def _create(d: Path, flag: str, text: str) -> Path | None:
    """Create the folder ``d`` and its missing parents; the topmost one created (None: ``d`` existed)."""
    missing = [p for p in (d, *d.parents) if not p.exists()]
    if not missing:
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {text!r}: cannot create {str(missing[-1])!r} ({os_reason(exc)})") from None
    return missing[-1]


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
    folder = ResumableFolder(d, verb, ident, parts)
    made: Path | None = None  # the topmost folder this call created
    try:
        with held_interrupts():  # what is created is also recorded, for the cleanup below
            made = _create(d, flag, os.fspath(path))
        if not os.access(d, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {os.fspath(path)!r} is not writable")
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
