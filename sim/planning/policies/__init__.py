"""Ordering policies: one module per policy, each with ``build(ctx, **options) -> Plan``; the registry.

To add a policy, write ``sim/planning/policies/<name>.py`` with a ``build`` function (see
``base.py``) and add ``<name>`` to :data:`POLICIES`. Every verb that takes ``--policy`` reads this
registry: ``all`` means every policy here unless a verb documents a narrower default.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from blendsim.errors import unknown
from blendsim.options import parse_choice_list

POLICIES: tuple[str, ...] = ("fifo", "dfs", "balance", "blend")
POLICY_HELP = "fifo (arrival order), dfs (prefix-tree order), balance (random), blend (BlendServe)"
# policies whose plan is two-sided: their admission draws from both ends at once to blend compute
# and memory on one replica, so they cannot feed a disaggregated layout's shared prefill stream
TWO_SIDED: frozenset[str] = frozenset({"blend"})
ONE_SIDED: tuple[str, ...] = tuple(p for p in POLICIES if p not in TWO_SIDED)

PolicyBuilder = Callable[..., Any]


def get_policy(name: str) -> PolicyBuilder:
    """The ``build`` function of policy ``name`` (a UserError names the valid ones)."""
    if name not in POLICIES:
        raise unknown("policy", name, POLICIES)
    module = importlib.import_module(f"{__name__}.{name}")
    builder: PolicyBuilder = module.build
    return builder


def parse_policies(value: str) -> tuple[str, ...]:
    """A comma list of policy names, or ``all`` (every registered policy, in registry order)."""
    return parse_choice_list(value, POLICIES, "policy")
