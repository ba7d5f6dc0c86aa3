"""SGLang's longest-prefix-match (``lpm``) admission: the waiting queue re-sorted on the radix cache.

Source: sgl-project/sglang, ``python/sglang/srt/managers/schedule_policy.py`` (``SchedulePolicy``:
``calc_priority``, ``_determine_active_policy``, ``_compute_prefix_matches``,
``_sort_by_longest_prefix``), read at commit ``00550cd``. Before each prefill batch is formed:

* with more than :data:`QUEUE_LIMIT` requests waiting, the policy is FCFS (SGLang turns the prefix
  matching off "when the #queue is large");
* otherwise every waiting request is matched against the radix cache. A request whose cached match
  is at most :data:`IN_BATCH_CHECK` tokens is matched, in queue order, against the prompts of the
  waiting requests seen before it that were not held back; if it shares at least
  :data:`IN_BATCH_DEPRIORITIZE` tokens with one of them it is held back (sorted last: admitting
  one of them first lets the others hit its prefix), else its prompt joins that set. The queue is
  then sorted, stably and in place, by cached match length descending, held-back requests last;
* the prefill batch takes requests from the queue's head while they fit (head-of-line).

In an offline pool every request waits from the start, so the queue holds everything not yet
admitted and this is FCFS (arrival order) until the last 128 requests. SGLang skips forming a
prefill batch while its running batch is full; here the sort is likewise skipped when the engine
could not admit anything this step (running cap or prefill room). Preempted requests are
re-admitted first, as every blendsim admission does (SGLang puts them back into the sorted queue).
The match here is the engine's segment-granular cache (:meth:`Engine.cached_prefix_tokens`); SGLang
matches tokens (page size 1 by default).
"""

from __future__ import annotations

from typing import Protocol

from blendsim.sim.simulation.admission import FcfsAdmission
from blendsim.sim.simulation.engine import Engine

QUEUE_LIMIT = 128  # waiting requests above which SGLang's lpm is FCFS
IN_BATCH_CHECK = 32  # IN_BATCH_PREFIX_CACHING_CHECK_THRESHOLD (SGLang's default)
IN_BATCH_DEPRIORITIZE = 32  # IN_BATCH_PREFIX_CACHING_DEPRIORITIZE_THRESHOLD (SGLang's default)


class Segments(Protocol):
    def segments(self, pos: int) -> tuple[list[int], list[int]]: ...


class PrefixView(Protocol):
    """What the sort reads from an engine: its cache's hit for a prompt and the prompts' segments."""

    @property
    def requests(self) -> Segments: ...

    def cached_prefix_tokens(self, pos: int) -> int: ...


def longest_prefix_first(engine: PrefixView, waiting: list[int]) -> list[int]:
    """``waiting`` (request positions, queue order) sorted as SGLang's lpm sorts its queue."""
    seen: set[int] = set()  # segments of the waiting prompts not held back (SGLang's simulated tree)
    keys: dict[int, float] = {}
    for pos in waiting:
        cached = engine.cached_prefix_tokens(pos)
        keys[pos] = -cached
        if cached > IN_BATCH_CHECK:
            continue
        segs, lens = engine.requests.segments(pos)
        shared = 0
        for seg, ln in zip(segs, lens, strict=True):
            if seg not in seen:
                break
            shared += ln
        if shared >= IN_BATCH_DEPRIORITIZE:
            keys[pos] = float("inf")
        else:
            seen.update(segs)
    return sorted(waiting, key=keys.__getitem__)


class LpmAdmission(FcfsAdmission):
    """FCFS over the plan's (arrival) order while more than :data:`QUEUE_LIMIT` wait, then the
    waiting tail re-sorted by :func:`longest_prefix_first` before every admission."""

    def admit_in_order(self, engine: Engine) -> None:
        stream = self.stream
        if len(stream.order) - stream.next <= QUEUE_LIMIT and engine.admission_open:
            stream.order[stream.next :] = longest_prefix_first(engine, stream.order[stream.next :])
        super().admit_in_order(engine)
