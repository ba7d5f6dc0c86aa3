"""Ordering policies: one module per policy, each with ``build(ctx, **options) -> Plan``; the registry.

To add a policy, write ``sim/planning/policies/<name>.py`` with a ``build`` function (see
``base.py``) and add ``<name>`` to :data:`POLICIES`. Every verb that takes ``--policy`` reads this
registry: ``all`` means every order here (:data:`ORDERS`; not ``auto``, which simulates them all)
unless a verb documents a narrower default.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from blendsim.errors import unknown
from blendsim.options import parse_choice_list

# policies that build an order themselves
ORDERS: tuple[str, ...] = ("fifo", "dfs", "balance", "blend", "dfs-tuned", "batchllm", "lpm", "dfs-weight")
# auto: simulates the orders on the run it plans for and returns the fastest (auto.py)
POLICIES: tuple[str, ...] = (*ORDERS, "auto")
POLICY_HELP = (
    "fifo (arrival order), dfs (prefix-tree order), balance (random), blend (BlendServe), "
    "dfs-tuned (long outputs first, small prefill chunks), "
    "batchllm (BatchLLM: prefix groups, decode-heavy groups first), "
    "lpm (SGLang's longest prefix match over the waiting queue; FCFS while more than 128 wait), "
    "dfs-weight (SGLang's DFS, heaviest subtree first), "
    "auto (simulates every order on this run, keeps the fastest; not in all)"
)
# policies whose plan is two-sided: their admission draws from both ends at once to blend compute
# and memory on one replica, so they cannot feed a disaggregated layout's shared prefill stream
TWO_SIDED: frozenset[str] = frozenset({"blend"})
# policies whose order the engine makes at admission time, on its own radix cache (Plan.admission)
ENGINE_SIDE: frozenset[str] = frozenset({"lpm"})
# the orders a disaggregated layout's shared prefill stream can run
ONE_SIDED: tuple[str, ...] = tuple(p for p in ORDERS if p not in TWO_SIDED | ENGINE_SIDE)

PolicyBuilder = Callable[..., Any]


def get_policy(name: str) -> PolicyBuilder:
    """The ``build`` function of policy ``name`` (a UserError names the valid ones)."""
    if name not in POLICIES:
        raise unknown("policy", name, POLICIES)
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    builder: PolicyBuilder = module.build
    return builder


def parse_policies(value: str) -> tuple[str, ...]:
    """A comma list of policy names, or ``all`` (every registered order, in registry order)."""
    names = [v.strip() for v in str(value).split(",")]
    if names == ["all"]:
        return ORDERS
    return parse_choice_list(value, POLICIES, "policy")


def check_disaggregable(name: str) -> None:
    """A UserError unless policy ``name`` can run on a disaggregated layout (``auto`` can: it ranks
    the one-sided orders there)."""
    from blendsim.sim.simulation.layout import not_disaggregable

    if name in TWO_SIDED or name in ENGINE_SIDE:
        raise not_disaggregable(name, engine_side=name in ENGINE_SIDE)
