"""Admission policies: one module per policy, each with ``build(ctx, **options) -> Plan``.

To add a policy, write ``sim/policies/<name>.py`` with a ``build`` function (see ``base.py``) and
add ``<name>`` to :data:`POLICIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from blendsim.errors import unknown

POLICIES: tuple[str, ...] = ("fifo", "dfs", "balance", "blend")

PolicyBuilder = Callable[..., Any]


def get_policy(name: str) -> PolicyBuilder:
    """The ``build`` function of policy ``name`` (a UserError names the valid ones)."""
    if name not in POLICIES:
        raise unknown("policy", name, POLICIES)
    module = importlib.import_module(f"{__name__}.{name}")
    builder: PolicyBuilder = module.build
    return builder
