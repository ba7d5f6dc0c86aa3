"""Each engine step's exact composition, read from vLLM's scheduler output.

The scheduler's ``schedule`` is wrapped: for every scheduled request, the tokens computed before the
step ``c`` and the tokens scheduled ``q``. A request with ``c`` < its prompt length is a prefill chunk
(``q`` tokens, ``q c + q (q + 1) / 2`` causal attention pairs); otherwise it decodes and reads ``c + q``
tokens of KV (the simulator's convention). A request's first schedule reports its prefix-cache hit as
``c``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Composition:
    """One step's work as the scheduler laid it out (``BatchShape`` counts) and its first schedules'
    prefix-cache hits by vLLM request id."""

    prefill_tokens: int = 0
    prefill_seqs: int = 0
    pairs: float = 0.0
    decode_seqs: int = 0
    kv: int = 0
    preempted: int = 0
    hits: dict[str, int] = field(default_factory=dict)


class ScheduleCapture:
    """Wraps ``scheduler.schedule`` to keep each step's composition (see the module docstring)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.last: Composition | None = None
        self._schedule = scheduler.schedule
        scheduler.schedule = self._wrapped

    def _wrapped(self, *args: Any, **kwargs: Any) -> Any:
        out = self._schedule(*args, **kwargs)
        self.last = self._compose(out)
        return out

    def _compose(self, out: Any) -> Composition:
        reqs = self.scheduler.requests
        new_ids = {r.req_id for r in out.scheduled_new_reqs}
        comp = Composition(preempted=len(out.preempted_req_ids or ()))
        for rid, q in out.num_scheduled_tokens.items():
            req = reqs[rid]
            before = int(req.num_computed_tokens) - int(q)  # schedule() has already advanced it
            prompt = int(req.num_prompt_tokens)
            if before < prompt:
                comp.prefill_tokens += q
                comp.prefill_seqs += 1
                comp.pairs += q * before + q * (q + 1) / 2.0
            else:
                comp.decode_seqs += 1
                comp.kv += before + q
            if rid in new_ids:
                comp.hits[rid] = before
        return comp
