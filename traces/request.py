"""A request of an offline batch: a prompt made of segments, and an output length.

Segment ids identify prompt pieces. Requests that share a prompt prefix share its leading segment
ids. Invariant (the generators and loaders keep it, :func:`Trace.validate` checks it): a segment id
determines the whole prefix before it, so the same id always has the same length and the same
predecessors. Token ids are never stored; the executor derives them from segment ids.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    source: str
    segments: tuple[int, ...]
    segment_lens: tuple[int, ...]
    output_len: int

    @property
    def prompt_len(self) -> int:
        return sum(self.segment_lens)
