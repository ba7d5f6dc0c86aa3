"""What made an output, and which format a file is in.

:func:`provenance` is the record every output carries (result JSON, sweep records, comparisons,
profiles, traces, output-folder manifests): blendsim's version, the git commit of its source where it
runs from a checkout, the command line, the seed and the profile. The CLI names the command line once
(:func:`recording_command`, in ``blendsim.cli.main``); library calls outside the CLI record none.

:func:`check_format` is the one rule for versioned files (traces, profiles): a file of a version this
blendsim reads loads (older ones are upgraded by their reader), any other fails naming both versions.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from blendsim import __version__
from blendsim.errors import UserError

_COMMAND: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("command", default=None)


@contextlib.contextmanager
def recording_command(argv: Sequence[str]) -> Iterator[None]:
    """Outputs written inside this block record ``argv`` as their command line."""
    token = _COMMAND.set(tuple(argv))
    try:
        yield
    finally:
        _COMMAND.reset(token)


def command_line() -> str | None:
    """The command line being run (shell-quoted), or None outside the CLI."""
    argv = _COMMAND.get()
    return shlex.join(argv) if argv else None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout blendsim's source runs from (``-dirty`` with local changes), or
    None when it is installed from a wheel, git is absent, or the source is not a tracked checkout."""
    here = Path(__file__).resolve().parent
    try:
        tracked = subprocess.run(
            ["git", "-C", str(here), "ls-files", "--error-unmatch", "__init__.py"],
            capture_output=True,
            timeout=5,
        )
        if tracked.returncode != 0:
            return None  # e.g. site-packages inside an ignored .venv of some checkout
        described = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = described.stdout.strip()
    return commit if described.returncode == 0 and commit else None


def provenance(*, seed: int | None = None, profile: str | None = None) -> dict[str, Any]:
    """The record of what made an output (module docstring); ``seed`` and ``profile`` (a name or a
    file) are None where the output has none."""
    return {
        "blendsim_version": __version__,
        "git_commit": git_commit(),
        "command": command_line(),
        "seed": seed,
        "profile": profile,
    }


def check_format(origin: str, found: Any, current: int, oldest: int = 0) -> int:
    """The format version ``found`` in the file ``origin`` if this blendsim reads it (``oldest`` to
    ``current``); a UserError naming both versions otherwise."""
    if isinstance(found, bool) or not isinstance(found, int):
        raise UserError(
            f"{origin} has format version {found!r}, not an integer; this blendsim writes {current}"
        )
    if found > current:
        raise UserError(
            f"{origin} has format version {found}, newer than this blendsim ({__version__}) reads "
            f"(version {current}); upgrade blendsim to read it"
        )
    if found < oldest:
        raise UserError(
            f"{origin} has format version {found}, older than this blendsim ({__version__}) reads "
            f"(versions {oldest} to {current}); regenerate it"
        )
    return found
