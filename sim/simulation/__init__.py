"""Simulation: the engine and its parts, the KV cache, admission policies, replicas, ``simulate`` and
its result."""

from blendsim.compiled import check_fresh

check_fresh(__file__)
