"""What goes wrong, and how the command line says it (docs/cli.md).

* :class:`UserError`: a problem with the user's input (an unknown name, a bad file, an infeasible
  target), raised anywhere; the CLI prints ``blendsim: error: <message>`` and exits 2.
* :class:`InstallError`: something to install (an optional package: the hint says how) or a broken
  installation; one line, exit ``code``.
* anything else is a bug: :func:`internal_error` prints one line saying so and where to report it,
  saves the traceback to a file, and the CLI exits 1 (never 2).
* Ctrl-C: ``blendsim: interrupted``, exit 130.
"""

from __future__ import annotations

# nothing heavy at the top: blendsim.cli imports this module before its Ctrl-C handler is in place
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_FAILURE = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
REPORT_TO = "blendsim's issue tracker"

# optional parts: the package a verb imports as it runs -> how to install it
INSTALL_HINTS = {
    "torch": "pip install 'blendsim[profile]' (CPU build: pip install torch==2.13.0)",
    "vllm": "blendsim executor setup --device cpu (or pip install 'blendsim[exec]')",
    "ray": "pip install 'blendsim[ray]'",
    "transformers": "blendsim executor setup --device cpu (it installs vLLM, which brings transformers)",
    "gguf": "blendsim executor setup --device cpu (it installs gguf for the model conversion)",
}


class UserError(Exception):
    """A problem with the user's input, reported as one line (exit 2)."""


class InstallError(UserError):
    """Something missing from the installation: one line, exit ``code`` (2: a package to install,
    1: blendsim itself is broken). ``short`` is the few words ``--help`` shows beside the verb."""

    def __init__(self, message: str, *, short: str = "", code: int = EXIT_USER_ERROR) -> None:
        super().__init__(message)
        self.short, self.code = short or message, code


def unknown(kind: str, value: str, valid: Sequence[str]) -> UserError:
    """The standard error for a name that is not one of ``valid``."""
    return UserError(f"unknown {kind} {value!r}; valid: {', '.join(sorted(valid))}")


def missing_package(name: str, what: str) -> InstallError:
    """``what`` needs the package ``name`` (top-level import name), which is not installed."""
    top = name.split(".")[0]
    how = INSTALL_HINTS.get(top, f"pip install {top} (or reinstall blendsim: pip install .)")
    return InstallError(f"{what} needs {top}, which is not installed: {how}", short=f"needs {top}")


def require(package: str, what: str) -> None:
    """An InstallError (:func:`missing_package`) unless ``package`` can be imported."""
    import importlib.util

    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a package blocked or half-installed (its __spec__ is None)
        found = False
    if not found:
        raise missing_package(package, what)


def internal_error(exc: BaseException, command: Sequence[str]) -> int:
    """Report a bug in running ``command``: one line on stderr, the traceback saved to a file;
    returns exit status 1."""
    import sys
    import traceback

    from blendsim import __version__

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    saved = _save_traceback(command, text)
    where = f"the traceback is in {saved}" if saved else "the traceback follows"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(
        f"blendsim: internal error: {type(exc).__name__}{': ' + first if first else ''}\n"
        f"blendsim: this is a bug in blendsim {__version__}, not in your input; please report it on "
        f"{REPORT_TO} with the command line; {where}",
        file=sys.stderr,
    )
    if not saved:
        print(text, file=sys.stderr)
    return EXIT_FAILURE


def _save_traceback(command: Sequence[str], text: str) -> str | None:
    import os
    import shlex
    import sys
    import tempfile
    import time

    name = f"blendsim-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path = os.path.join(tempfile.gettempdir(), name)
    try:
        with open(path, "w") as fh:
            fh.write(f"command: {shlex.join(command)}\ncwd: {os.getcwd()}\npython: {sys.version}\n\n{text}")
    except OSError:
        return None
    return path


def __getattr__(name: str) -> Any:
    # atomic_output moved to blendsim.outputs (the one output helper); old imports keep working
    if name == "atomic_output":
        from blendsim.outputs import atomic_output

        return atomic_output
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
