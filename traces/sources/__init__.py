"""Workload sources (blendserve.md §6): one generator per trace the paper uses."""

from __future__ import annotations

from blendsim.errors import unknown
from blendsim.traces.sources import azure, burstgpt, limo, mmlu, openvid, sharegpt, wildchat
from blendsim.traces.sources.base import Source, SourceBlock

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        burstgpt.SOURCE,
        azure.SOURCE,
        sharegpt.SOURCE,
        wildchat.SOURCE,
        mmlu.SOURCE,
        openvid.SOURCE,
        limo.SOURCE,
    )
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise unknown("source", name, list(SOURCES))
    return SOURCES[name]


__all__ = ["SOURCES", "Source", "SourceBlock", "get_source"]
