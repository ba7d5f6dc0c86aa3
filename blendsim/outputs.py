"""Where a verb writes: output paths checked once, at the CLI edge, before any work.

Library code writes into folders and files it is given and checks nothing about them; the verbs
call these first, so a bad path is one line naming the flag and the path, never a traceback after
minutes of work.
"""

from __future__ import annotations

import os
from pathlib import Path

from blendsim.errors import UserError


def output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """The folder ``path`` for ``flag``'s outputs, created if missing (parents too). UserError when
    the name is empty, when it or a parent exists and is not a folder, or when it is not writable."""
    text = os.fspath(path)
    if not text.strip():
        raise UserError(f"{flag} needs a folder name, got an empty one")
    d = Path(text)
    for p in (d, *d.parents):
        if p.exists() and not p.is_dir():
            raise UserError(f"{flag} {text!r}: {str(p)!r} exists and is not a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {text!r}: cannot create it ({exc.strerror})") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {text!r} is not writable")
    return d
