"""Commands that start blendsim in a child process, from any working directory.

``python -m blendsim.cli`` puts the working directory first on ``sys.path``. Run from a checkout's
root, the source folder ``blendsim/`` is then imported as the package, whose other parts
(``blendsim.traces``, ``blendsim.executor``, ...) live in sibling folders that only the installed
package maps in, so the child finds none of them. The child here drops the working directory (and
the empty entry that stands for it) from ``sys.path`` before importing anything of blendsim.
"""

from __future__ import annotations

import sys

_LAUNCH = (
    "import os, runpy, sys; "
    "cwd = os.getcwd(); "
    "sys.path[:] = [p for p in sys.path if p not in ('', '.') and os.path.abspath(p) != cwd]; "
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
)


def module_command(python: str | None, module: str, *args: str) -> list[str]:
    """``python -m module args...`` that imports the installed blendsim wherever it is run from."""
    return [python or sys.executable, "-c", _LAUNCH.format(module=module), *args]


def blendsim_command(python: str | None, *args: str) -> list[str]:
    """The ``blendsim`` command line (``blendsim args...``) run by ``python``."""
    return module_command(python, "blendsim.cli", *args)
