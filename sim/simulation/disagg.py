"""A disaggregated layout: P prefill and D decode replicas on one simpy clock, every request's KV
moved from the one to the other over a link (DistServe, OSDI'24; the paper's Figure 8).

Which replica gets which request:

* **Prefill**: the policy's plan order is one stream shared by the prefill replicas. At each of its
  step boundaries a replica admits from the stream's head as many requests as its prefill room and
  KV allow (FCFS and head-of-line, as a colocated replica admits), so the replica that frees room
  first takes the next request: the least loaded one, and requests adjacent in the plan (those of
  one prefix) mostly land on the same replica's prefix cache.
* **Decode**: handed-off requests queue in the order their prompts finished (FCFS, head-of-line).
  The head goes to the decode replica with the least committed KV (its pinned prompt KV plus the
  admission rule's charges; ties to the lowest index) among those whose running cap, admission
  rule and free KV take it now; when none does, the queue waits for a decode step to free KV.
  This is DistServe's decode-side acceptance (``distserve/decoding_stage_scheduler.py``: the head
  of the unaccepted queue, while its blocks fit; the KV stays on the prefill side until moved).

A **transfer** is reserved on its decode replica first (:meth:`DecodeEngine.accept`), so KV in
flight counts against both replicas' capacity, then moved: it holds its prefill replica's send side
and its decode replica's receive side for ``latency + bytes / bandwidth`` (:mod:`.layout`), each a
FIFO (a GPU sends and receives at its link rate, one transfer at a time; distinct GPU pairs do not
share the fabric, as on NVSwitch). ``bytes`` is the request's prompt KV, ``p x kv_bytes_per_token``
(the first output token's KV is written by its first decode). Transfers overlap the replicas'
compute (copy engines). When one lands the prefill replica frees the KV and the decode replica
decodes the request from its next step. Not modelled: streaming KV layer by layer during the
prefill (a prompt's KV moves once it is whole).

Invariants (tests): each request with more than one output token is transferred exactly once,
its whole prompt KV, after its prompt finished and before its first decode; no replica holds more
KV blocks than its capacity, in flight included.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from blendsim.sim.simulation.admission import FcfsAdmission, ReadmitOnly, Stream
from blendsim.sim.simulation.layout import KvLink
from blendsim.sim.simulation.replicas import PROGRESS_EVERY
from blendsim.sim.simulation.roles import DecodeEngine, PrefillEngine

TRANSFER_COLUMNS = (
    "position",
    "prefill_replica",
    "decode_replica",
    "tokens",
    "bytes",
    "ready_s",
    "accepted_s",
    "start_s",
    "end_s",
)


@dataclass
class Transfer:
    """One request's KV on its way: ready when its prompt finished, accepted when a decode replica
    reserved its KV, moving from ``start_s`` to ``end_s`` (replicas numbered as in the step record:
    prefill replicas first, then decode replicas)."""

    position: int
    prefill_replica: int
    tokens: int
    bytes: int
    ready_s: float
    decode_replica: int = -1
    accepted_s: float = float("nan")
    start_s: float = float("nan")
    end_s: float = float("nan")


class _Signal:
    """Wakes whoever waits on it; a fire with nobody waiting is dropped (waiters re-check first)."""

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._event = env.event()

    def wait(self) -> simpy.Event:
        return self._event

    def fire(self) -> None:
        if self._event.callbacks:
            self._event.succeed()
            self._event = self._env.event()


Tick = Callable[[int], None]


class DisaggregatedRun:
    """One run of the layout (module docstring): ``prefill`` and ``decode`` replicas, the plan's
    ``order`` (request positions) the prefill replicas share, the ``link`` and the KV bytes per token."""

    def __init__(
        self,
        prefill: list[PrefillEngine],
        decode: list[DecodeEngine],
        order: np.ndarray,
        link: KvLink,
        kv_bytes_per_token: int,
        tick: Tick | None = None,
    ) -> None:
        self.prefill, self.decode, self.link = prefill, decode, link
        self.env = env = simpy.Environment()
        stream = Stream(order)
        self._admit = [FcfsAdmission(stream) for _ in prefill]
        self._readmit = ReadmitOnly()
        self._kv_bytes = kv_bytes_per_token
        self._tick = tick or (lambda _n: None)
        self._send = [simpy.Resource(env, capacity=1) for _ in prefill]
        self._receive = [simpy.Resource(env, capacity=1) for _ in decode]
        self._landed = [_Signal(env) for _ in prefill]
        self._arrived = [_Signal(env) for _ in decode]
        self._room = _Signal(env)
        self._queue: deque[Transfer] = deque()
        outputs = np.asarray(prefill[0].requests.d, dtype=np.int64)
        self._expected = int(np.count_nonzero(outputs[np.asarray(order, dtype=np.int64)] > 1))
        self._dispatched = 0
        self.transfers: list[Transfer] = []

    def run(self) -> float:
        """Run to completion; returns the makespan."""
        for k in range(len(self.prefill)):
            self.env.process(self._prefill_replica(k))
        for j in range(len(self.decode)):
            self.env.process(self._decode_replica(j))
        self.env.process(self._dispatcher())
        self.env.run()
        return max(e.now for e in (*self.prefill, *self.decode))

    def summary(self, makespan: float) -> dict[str, Any]:
        """The run in a few numbers (the result's ``disagg``): the replicas and the link; how many
        transfers and bytes moved, their mean time on the link and the share of the prefill
        replicas' time their send side was busy; how long KV waited for a decode replica's room
        (ready to accepted) and for the link (accepted to start); and when the longest output's
        prompt was done (its decode, the critical path, could begin no sooner)."""
        t = self.columns()
        moving = t["end_s"] - t["start_s"]
        room = t["accepted_s"] - t["ready_s"]
        outputs = self.prefill[0].requests.d
        longest = max(range(len(outputs)), key=outputs.__getitem__, default=-1)
        ready = t["ready_s"][t["position"] == longest]

        def avg(x: np.ndarray) -> float:
            return float(x.mean()) if len(x) else 0.0

        span = len(self.prefill) * makespan
        return {
            "prefill": len(self.prefill),
            "decode": len(self.decode),
            **self.link.to_dict(),
            "transfers": len(moving),
            "transfer_bytes": int(t["bytes"].sum()),
            "transfer_s_mean": avg(moving),
            "link_busy": float(moving.sum() / span) if span else 0.0,
            "wait_for_decode_s_mean": avg(room),
            "wait_for_decode_s_max": float(room.max()) if len(room) else 0.0,
            "wait_for_link_s_mean": avg(t["start_s"] - t["accepted_s"]),
            "longest_output_ready_s": float(ready[0]) if len(ready) else 0.0,
        }

    def columns(self) -> dict[str, np.ndarray]:
        """The transfer record, one row per transfer in handoff order (:data:`TRANSFER_COLUMNS`)."""
        out: dict[str, np.ndarray] = {}
        for name in TRANSFER_COLUMNS:
            values = [getattr(t, name) for t in self.transfers]
            kind = np.float64 if name.endswith("_s") else np.int64
            out[name] = np.asarray(values, dtype=kind)
        return out

    # ------------------------------------------------------------------ processes
    def _prefill_replica(self, k: int) -> Generator[simpy.Event, None, None]:
        engine, policy, env = self.prefill[k], self._admit[k], self.env
        done = 0
        while True:
            engine.now = env.now
            policy.admit(engine)
            if engine.has_work:
                yield env.timeout(engine.step())
                for pos in engine.handoffs:
                    self._hand_off(k, pos)
                engine.handoffs.clear()
                done = self._progress(engine, done)
            elif engine.n_running:  # its KV waits to move: nothing frees room until a transfer lands
                yield self._landed[k].wait()
            elif policy.exhausted:
                break
            else:
                raise RuntimeError("a prefill replica stalled: idle, and the next request was not admitted")
        self._tick(engine.stats.finished - done)

    def _decode_replica(self, j: int) -> Generator[simpy.Event, None, None]:
        engine, env = self.decode[j], self.env
        done = 0
        while True:
            engine.now = env.now
            self._readmit.admit(engine)
            if engine.has_work:
                yield env.timeout(engine.step())
                if self._queue:
                    self._room.fire()
                done = self._progress(engine, done)
            elif engine.n_running:  # only transfers in flight
                yield self._arrived[j].wait()
            elif engine.preempted:
                raise RuntimeError("a decode replica stalled: idle, and a preempted request did not fit")
            elif self._dispatched == self._expected:
                break
            else:
                yield self._arrived[j].wait()
        self._tick(engine.stats.finished - done)

    def _dispatcher(self) -> Generator[simpy.Event, None, None]:
        env = self.env
        while self._dispatched < self._expected:
            while self._queue:
                transfer = self._queue[0]
                j = self._place(transfer.position)
                if j is None:
                    if all(e.n_running == 0 and not e.preempted for e in self.decode):
                        raise RuntimeError(
                            f"no idle decode replica takes request position {transfer.position} "
                            f"(its estimated KV exceeds the capacity?)"
                        )
                    break
                self._queue.popleft()
                self._dispatched += 1
                transfer.decode_replica = len(self.prefill) + j
                transfer.accepted_s = env.now
                env.process(self._move(transfer, j))
            if self._dispatched < self._expected:
                yield self._room.wait()
        for signal in self._arrived:  # replicas waiting for arrivals may now finish
            signal.fire()

    def _move(self, transfer: Transfer, j: int) -> Generator[simpy.Event, None, None]:
        env, k = self.env, transfer.prefill_replica
        with self._send[k].request() as sending:
            yield sending
            with self._receive[j].request() as receiving:
                yield receiving
                transfer.start_s = env.now
                yield env.timeout(self.link.seconds(transfer.bytes))
        transfer.end_s = env.now
        self.prefill[k].transferred(transfer.position, env.now)
        self._landed[k].fire()
        self.decode[j].land(transfer.position)
        self._arrived[j].fire()

    # ------------------------------------------------------------------ helpers
    def _hand_off(self, k: int, pos: int) -> None:
        tokens = self.prefill[k].requests.p[pos]
        transfer = Transfer(pos, k, tokens, tokens * self._kv_bytes, self.env.now)
        self.transfers.append(transfer)
        self._queue.append(transfer)
        self._room.fire()

    def _place(self, pos: int) -> int | None:
        """The decode replica that accepts ``pos`` now, least committed KV first (module docstring)."""
        ranked = sorted(range(len(self.decode)), key=lambda j: (self.decode[j].blocks.committed_blocks, j))
        for j in ranked:
            if self.decode[j].accept(pos, self.env.now):
                return j
        return None

    def _progress(self, engine: PrefillEngine | DecodeEngine, done: int) -> int:
        if engine.step_index % PROGRESS_EVERY:
            return done
        self._tick(engine.stats.finished - done)
        return engine.stats.finished
