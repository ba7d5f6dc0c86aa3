"""The ``blendsim`` command line: one verb, one module that registers it.

Each verb module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int``. Verbs are registered by import name, so a verb whose module does not
import still appears: running it reports why (the module and the missing package), and the others
work.

Exit status (docs/cli.md): 0 done; 1 a bug ("internal error", with where to report it), a broken
installation, or a verb's own failure verdict (validate's error budget, a failed sweep cell); 2 a bad
input (one line naming the value or path, nothing left behind); 130 interrupted (Ctrl-C, at any
moment, also while the CLI is still importing).

At the top this module imports only ``sys`` and :mod:`blendsim.errors` (itself importing nothing at
the top), so everything else, the verbs' modules included, imports inside :func:`main`'s handler:
a Ctrl-C from the first line of ``main`` on is an interrupt.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from blendsim import __version__
from blendsim.errors import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    InstallError,
    UserError,
    internal_error,
    missing_package,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

# verb modules, in the order `--help` lists them, with the verbs each registers
VERB_MODULES: dict[str, tuple[str, ...]] = {
    "blendsim.traces.cli": ("trace",),
    "blendsim.profiler.cost_cli": ("cost",),
    "blendsim.profiler.profile_cli": ("profile",),
    "blendsim.sim.plan_cli": ("plan",),
    "blendsim.sim.simulate_cli": ("simulate",),
    "blendsim.experiments.sweep_cli": ("sweep",),
    "blendsim.experiments.figures_cli": ("figures",),
    "blendsim.executor.cli": ("execute", "executor", "validate"),
    "blendsim.executor.batch_cli": ("plan-batch", "run-batch"),
}

DESCRIPTION = """\
Plan offline (batch) LLM inference. blendsim generates workloads, fits cost models, orders the
request pool (BlendServe's resource-aware prefix tree and dual scanner, or FIFO, DFS and random
baselines), simulates the order on a modelled engine, and replays it on real engines.

typical session:
  blendsim trace make --preset trace1 -o t1.parquet
  blendsim plan t1.parquet --policy blend
  blendsim simulate t1.parquet --policy all
  blendsim sweep --sharing-ratio 0.5

a real batch:
  blendsim plan-batch batch.jsonl -o ordered.jsonl --profile cpu-vllm.json
  blendsim run-batch ordered.jsonl -o results.jsonl

exit status: 0 done, 2 a bad input (one line, nothing written), 1 a failure or a bug,
130 interrupted (docs/cli.md)
"""


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import importlib

    from blendsim.options import Parser

    parser = Parser(
        prog="blendsim", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"blendsim {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, verbs in VERB_MODULES.items():
        try:
            module = importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the verb stays listed; running it says why it cannot run
            for verb in verbs:
                _register_unavailable(sub, verb, name, exc)
            continue
        module.register(sub)
    return parser


def _register_unavailable(sub: Any, verb: str, module: str, exc: BaseException) -> None:
    """``verb``, whose module ``module`` failed to import with ``exc``: listed, and an error to run."""
    import argparse

    problem = _import_failure(verb, module, exc)
    short = problem.short if problem is not None else f"{module} does not import: a bug"
    p = sub.add_parser(verb, help=f"(unavailable: {short})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def fail(_args: argparse.Namespace) -> int:
        raise problem if problem is not None else exc  # a bug in the module: main reports it as one

    p.set_defaults(func=fail)


def _import_failure(verb: str, module: str, exc: BaseException) -> InstallError | None:
    """What the import failure of ``verb``'s module means for the user: a package to install (exit
    2), a broken installation of blendsim itself (exit 1), or None: a bug (any other error)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    if not exc.name.startswith("blendsim"):
        return missing_package(exc.name, f"`blendsim {verb}`")
    return InstallError(
        f"{module} does not import: module {exc.name!r} is missing; blendsim is not installed, or the "
        "folder you run it from shadows the installed package (run it from another folder, or "
        "reinstall with `pip install .`)",
        short=f"{module} does not import",
        code=1,
    )


def _build_parser_interruptibly() -> argparse.ArgumentParser:
    """:func:`build_parser`, where a Ctrl-C is an interrupt even when it lands inside a module's
    import and that module turns it into another error (numpy's C initialisation does)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return build_parser()
    pressed: list[bool] = []

    def on_ctrl_c(_signum: int, _frame: object) -> None:
        pressed.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        parser = build_parser()
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns its exit status (module docstring). ``argv`` defaults to
    ``sys.argv[1:]``; argparse's own exits (``--help``, a malformed option) raise SystemExit."""
    args_list = list(sys.argv[1:] if argv is None else argv)

    def dispatch() -> int:
        parser = _build_parser_interruptibly()
        args = parser.parse_args(args_list)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USER_ERROR
        return int(args.func(args) or 0)

    return run_command(dispatch, ["blendsim", *args_list])


def run_command(body: Callable[[], int], command: Sequence[str]) -> int:
    """``body()``'s exit status, every failure turned into its status and one line (module
    docstring); outputs written meanwhile record ``command`` as their command line."""
    try:
        from blendsim.provenance import recording_command

        with recording_command(command):
            return body()
    except InstallError as exc:
        print(f"blendsim: error: {exc}", file=sys.stderr)
        return exc.code
    except UserError as exc:
        print(f"blendsim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("blendsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # output piped into `head` and the like: stop quietly, as Unix tools do
        sys.stderr.close()
        return 0
    except ModuleNotFoundError as exc:  # an optional part (torch, vLLM, Ray) imported as the verb runs
        if not exc.name or exc.name.startswith("blendsim"):
            return internal_error(exc, command)
        print(f"blendsim: error: {missing_package(exc.name, 'this command')}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        return internal_error(exc, command)


if __name__ == "__main__":
    sys.exit(main())
