"""EngineStats: what one replica did, as counters that add up across replicas in one call.

Invariants at the end of a complete run: ``finished`` is the replica's request count;
``prefill_completions + sum(decode tokens) == sum(output lengths)`` (every output token is sampled
once, by a decode or by the prefill that ends a prompt); ``gemm_done`` is the prefill tokens plus
the decode tokens of every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields


@dataclass(slots=True)
class EngineStats:
    saved_tokens: int = 0  # prompt tokens skipped by cache hits at first admission
    recomputed_tokens: int = 0  # prefill work redone after preemption (net of never-computed parts)
    preemptions: int = 0
    gemm_done: int = 0  # GEMM tokens computed so far (prefill + decode)
    kv_done: int = 0  # decode KV tokens read so far
    pairs_done: float = 0.0  # prefill attention query-key pairs computed so far
    chunks_done: int = 0  # prefill chunks run so far (each samples logits: the LM head's rows)
    prefill_completions: int = 0  # prefills that sampled a token (first ones and recomputes)
    finished: int = 0
    outruns: int = 0  # blend left requests re-accounted to the right partition

    @classmethod
    def total(cls, parts: Sequence[EngineStats]) -> EngineStats:
        """Field-wise sums over ``parts`` (replicas), in their order."""
        return cls(*(sum(getattr(p, f.name) for p in parts) for f in fields(cls)))
