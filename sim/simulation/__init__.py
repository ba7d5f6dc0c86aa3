"""Simulation: the engine and its parts, the KV cache, admission policies, replicas, ``simulate`` and
its result."""
