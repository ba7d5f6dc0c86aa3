"""The ``blendsim`` command line: one verb, one module that registers it.

Each verb module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int``. Verbs are registered lazily by import name so that a verb whose optional
dependencies (torch, vLLM) are missing does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from blendsim import __version__
from blendsim.errors import EXIT_USER_ERROR, UserError

# verb modules, in the order `--help` lists them
VERB_MODULES = (
    "blendsim.traces.cli",  # trace make | stats
    "blendsim.profiler.cost_cli",  # cost
    "blendsim.profiler.profile_cli",  # profile
    "blendsim.sim.plan_cli",  # plan
    "blendsim.sim.simulate_cli",  # simulate
    "blendsim.experiments.sweep_cli",  # sweep
    "blendsim.experiments.figures_cli",  # figures
    "blendsim.executor.cli",  # execute, executor setup | prepare-model, validate
    "blendsim.executor.batch_cli",  # plan-batch, run-batch
)

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
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blendsim", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"blendsim {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("blendsim"):
                continue  # that part is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"blendsim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("blendsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and the like: stop quietly, as Unix tools do
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
