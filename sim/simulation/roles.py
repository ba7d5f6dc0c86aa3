"""The two roles of a disaggregated layout: engines whose admission and steps differ from a
colocated replica's, made of the same parts (block allocator, prefill queue, decode set, recorder).

:class:`PrefillEngine` admits requests from the plan's order and prefills them in chunks with its
own radix prefix cache, like a colocated replica; it never decodes. The step that finishes a
prompt samples the first output token (a request of one output token finishes there); any other
request is handed off (:attr:`PrefillEngine.handoffs`) and its KV stays where it is, counted against
this replica's capacity, until its transfer has landed (:meth:`PrefillEngine.transferred`). An
admission is charged the prompt's KV only: a prefill replica holds no output.

:class:`DecodeEngine` takes requests whose prompt is computed elsewhere. :meth:`DecodeEngine.accept`
reserves a request's KV before its transfer starts, charged by the admission rule as a colocated
admission is (the prompt plus the rule's share of the estimated output), so KV in flight counts on
both sides; :meth:`DecodeEngine.land` starts its decode at the next step. Each request's KV is its
own here (DistServe's decode instances keep no prefix cache; the transfer brings a request's whole
KV), so decode replicas share no prefixes. A decode replica preempted for room recomputes the
request's prompt and generated tokens itself, as a colocated replica would.
"""

from __future__ import annotations

import numpy as np

from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.engine import Engine, StepCost
from blendsim.sim.simulation.record import DECODE, PREFILL
from blendsim.sim.simulation.sides import FCFS
from blendsim.traces.trace import Trace


class PrefillEngine(Engine):
    """A prefill replica (module docstring). Invariant: ``n_running`` counts its prefilling
    requests plus those handed off whose transfer has not landed; it never has a decode."""

    role = PREFILL
    charges_output = False

    def __init__(
        self, trace: Trace, est_output: np.ndarray, cost: StepCost, config: EngineConfig, capacity_blocks: int
    ) -> None:
        super().__init__(trace, est_output, cost, config, capacity_blocks)
        self.handoffs: list[int] = []  # prompts done since the caller last drained it; KV held here

    def _prompt_done(self, pos: int, t: int) -> None:
        self.handoffs.append(pos)

    def transferred(self, pos: int, now: float) -> None:
        """``pos``'s KV has landed on its decode replica at ``now``: free it here (its prompt
        segments stay cached)."""
        self._leave(pos, self.blocks.own_blocks(self.requests.p[pos], 0), max(now, self.now))


class DecodeEngine(Engine):
    """A decode replica (module docstring). Invariant: ``n_running`` counts its decoding and
    recomputing requests plus those accepted whose KV is still in flight (``in_flight``)."""

    role = DECODE
    shares_prefixes = False

    def __init__(
        self, trace: Trace, est_output: np.ndarray, cost: StepCost, config: EngineConfig, capacity_blocks: int
    ) -> None:
        super().__init__(trace, est_output, cost, config, capacity_blocks)
        self.in_flight = 0  # accepted requests whose KV has not landed

    def accept(self, pos: int, now: float) -> bool:
        """Reserve the KV of ``pos`` (prompt computed elsewhere, first token sampled) for its
        transfer if the running cap and the admission rule allow; False, changing nothing, if not."""
        if self.n_running >= self._max_running:
            return False
        r = self.requests
        p = r.p[pos]
        target, charged_out = self._charged_output(pos, 0)
        segs, lens = r.segments(pos)
        got = self.blocks.reserve(pos, segs, lens, p, 0, charged_out, max(now, self.now))
        if got is None:
            return False
        _, new_blocks, charge = got
        r.gen[pos] = 1
        r.admitted(pos)
        r.est_end[pos] = self.step_index + target
        r.est_final[pos] = p + target
        self.sides.join(pos, FCFS, new_blocks + charge, r.est_end[pos], r.est_final[pos])
        self.n_running += 1
        self.in_flight += 1
        return True

    def land(self, pos: int) -> None:
        """The KV of accepted ``pos`` is here: it decodes from the next step on."""
        self.in_flight -= 1
        self._start_decode(pos, self.step_index - 1)
