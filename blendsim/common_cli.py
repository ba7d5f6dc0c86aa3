"""The options several verbs share, each declared once: the engine (from ``EngineConfig``'s fields),
output-length estimation (``EstimationConfig``'s), the policies, the model and its hardware profile,
data parallelism or a disaggregated layout (from ``DisaggConfig``'s fields) and the seed.

A verb adds the groups it needs and reads them back with the matching function; a verb whose
engine differs from the simulator's defaults (the vLLM backend: serial steps, 128-token KV blocks)
passes its overrides once, as ``defaults``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from blendsim.errors import UserError
from blendsim.options import (
    add_options,
    at_least,
    config_from_args,
    flag_of,
    int64,
    non_defaults,
    parse_choice_list,
)
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.policies import POLICIES, POLICY_HELP, parse_policies
from blendsim.sim.simulation.config import ENGINES, EngineConfig
from blendsim.sim.simulation.layout import DisaggConfig, parse_layout

DEFAULT_MODEL = "llama-3-8b"
DEFAULT_GPU = "a100-80g"
SEED_MAX = 2**32 - 1


def add_engine_options(
    parser: argparse.ArgumentParser,
    *,
    defaults: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    several_engines: bool = False,
) -> None:
    """The engine's options in a group of their own; ``several_engines``: ``--engine`` takes a
    comma list (or ``both``), one run per engine."""
    group = parser.add_argument_group("engine (EngineConfig)")
    add_options(
        group, EngineConfig, defaults=defaults, exclude=exclude, lists=("engine",) if several_engines else ()
    )


def engine_configs(args: argparse.Namespace, **fixed: Any) -> list[EngineConfig]:
    """One EngineConfig per engine named by ``--engine`` (one unless the verb takes several)."""
    engines = parse_choice_list(args.engine, ENGINES, "engine", all_words=("both", "all"))
    return [config_from_args(EngineConfig, args, **fixed, engine=e) for e in engines]


def engine_config(args: argparse.Namespace, **fixed: Any) -> EngineConfig:
    return config_from_args(EngineConfig, args, **fixed)


def add_estimation_options(parser: argparse.ArgumentParser) -> None:
    """How planning estimates output lengths (``EstimationConfig``), in a group of their own."""
    add_options(parser.add_argument_group("output-length estimation (EstimationConfig)"), EstimationConfig)


def estimation_config(args: argparse.Namespace) -> EstimationConfig:
    return config_from_args(EstimationConfig, args)


def add_policy_option(parser: argparse.ArgumentParser, default: str = "all", narrower: str = "") -> None:
    parser.add_argument(
        "--policy",
        "--policies",
        dest="policy",
        default=default,
        metavar="P[,P...]",
        help=f"policies, a comma list or all: {POLICY_HELP} (default: {default}{narrower})",
    )


def policies(args: argparse.Namespace) -> tuple[str, ...]:
    return parse_policies(args.policy)


def add_hardware_options(
    parser: argparse.ArgumentParser, *, model_default: str | None = DEFAULT_MODEL
) -> None:
    """``--model``, ``--gpu`` or ``--profile``, and ``--tp``."""
    shown = model_default or "the trace's model, else " + DEFAULT_MODEL
    parser.add_argument(
        "--model", default=model_default, help=f"built-in model name or config.json (default: {shown})"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--gpu", default=None, help=f"built-in profile name (default: {DEFAULT_GPU})")
    source.add_argument(
        "--profile", default=None, metavar="FILE", help="profile JSON from `blendsim profile`"
    )
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel GPUs per replica (default: 1)")


def add_dp_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dp", type=int, default=1, help="data-parallel replicas (default: 1)")


def add_disagg_options(parser: argparse.ArgumentParser) -> None:
    """``--disagg PxD`` and its KV link's options (``DisaggConfig``), in a group of their own."""
    group = parser.add_argument_group("disaggregated layout (DisaggConfig)")
    group.add_argument(
        "--disagg",
        default=None,
        metavar="PxD",
        help="run on P prefill and D decode replicas whose KV moves over the KV link (e.g. 1x2, or "
        "the paper's 1P2D); --engine still sets how each replica composes a step (default: colocated "
        "replicas, --dp)",
    )
    add_options(group, DisaggConfig)


def disagg_config(args: argparse.Namespace) -> DisaggConfig | None:
    """The layout ``--disagg`` names (None: colocated); its link options need it, and exclude ``--dp``."""
    text = getattr(args, "disagg", None)
    if text is None:
        given = non_defaults(config_from_args(DisaggConfig, args))
        if given:
            field = next(f for f in dataclasses.fields(DisaggConfig) if f.name == given[0][0])
            raise UserError(f"{flag_of(field)} applies to a disaggregated layout: give --disagg PxD too")
        return None
    try:
        prefill, decode = parse_layout(text)
    except UserError as exc:
        raise UserError(f"--disagg {exc}") from None
    if getattr(args, "dp", 1) != 1:
        raise UserError("--dp and --disagg exclude each other: a disaggregated layout sets its own replicas")
    return config_from_args(DisaggConfig, args, prefill=prefill, decode=decode)


def add_seed_option(parser: argparse.ArgumentParser, what: str = "planning: sampling, random order") -> None:
    parser.add_argument(
        "--seed", type=seed, default=0, metavar="N", help=f"seed of the {what}, 0 to {SEED_MAX} (default: 0)"
    )


def seed(text: str) -> int:
    """A ``--seed``: an integer in [0, SEED_MAX] (the sources' random streams take 32 bits)."""
    value = int64(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not in [0, {SEED_MAX}]")
    return value


def check_counts(args: argparse.Namespace) -> None:
    """``--dp`` and ``--tp`` (where the verb has them) are positive."""
    for name in ("dp", "tp"):
        value = getattr(args, name, None)
        if value is not None and (problem := at_least(1)(value)):
            raise UserError(f"--{name} {problem}")


__all__ = [
    "POLICIES",
    "add_disagg_options",
    "add_dp_option",
    "add_engine_options",
    "add_estimation_options",
    "add_hardware_options",
    "add_policy_option",
    "add_seed_option",
    "check_counts",
    "disagg_config",
    "engine_config",
    "engine_configs",
    "estimation_config",
    "policies",
]
