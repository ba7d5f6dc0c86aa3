"""User-facing errors: one clear line, exit code 2, no traceback.

Raise :class:`UserError` anywhere a user's input is at fault (unknown name, bad file, infeasible
target). The CLI catches it, prints ``blendsim: error: <message>`` to stderr and exits 2.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def unknown(kind: str, value: str, valid: Sequence[str]) -> UserError:
    """The standard error for a name that is not one of ``valid``."""
    return UserError(f"unknown {kind} {value!r}; valid: {', '.join(sorted(valid))}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    Guarantees no half-written output file is left behind on any error.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output directory {str(parent)!r} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
