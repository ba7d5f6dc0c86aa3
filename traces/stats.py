"""Trace statistics per source and in total: counts, length means and p99s, tokens, density, sharing.

Density and sharing are the design.md definitions (sharing = saved / sum(p + d) with an unbounded
prefix cache; density = set_density at the GPU's datasheet peaks), so a trace made for a target
shows that target here, and anyone can recompute both from the file's columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blendsim.profiler.cost import set_density
from blendsim.profiler.gpus import HardwareSpec, get_gpu
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.traces.trace import Trace


def _group(trace: Trace, mask: np.ndarray | None, model: ModelSpec, gpu: HardwareSpec) -> dict[str, Any]:
    p = trace.prompt_len if mask is None else trace.prompt_len[mask]
    d = trace.output_len if mask is None else trace.output_len[mask]
    saved = trace.saved_tokens(mask)
    tokens = int(p.sum() + d.sum())
    empty = len(p) == 0
    return {
        "requests": int(len(p)),
        "prompt_mean": 0.0 if empty else float(p.mean()),
        "prompt_p99": 0.0 if empty else float(np.percentile(p, 99)),
        "output_mean": 0.0 if empty else float(d.mean()),
        "output_p99": 0.0 if empty else float(np.percentile(d, 99)),
        "prompt_tokens": int(p.sum()),
        "output_tokens": int(d.sum()),
        "tokens": tokens,
        "saved_tokens": int(saved),
        "density": float(set_density(p, d, model, gpu, saved)) if not empty else 0.0,
        "sharing": saved / tokens if tokens else 0.0,
    }


def trace_stats(
    trace: Trace, model: str | ModelSpec = "llama-3-8b", gpu: str | HardwareSpec = "a100-80g"
) -> dict[str, Any]:
    """{"model", "gpu", "sources": {name: group}, "total": group}; a group's keys as in ``_group``."""
    m = get_model(model) if isinstance(model, str) else model
    g = get_gpu(gpu) if isinstance(gpu, str) else gpu
    sources = {
        name: _group(trace, trace.source_codes == code, m, g) for code, name in enumerate(trace.sources)
    }
    return {"model": m.name, "gpu": g.name, "sources": sources, "total": _group(trace, None, m, g)}


def format_stats(stats: dict[str, Any]) -> str:
    """A fixed-width table of :func:`trace_stats`."""
    head = (
        f"{'source':<10} {'requests':>9} {'p mean':>8} {'p p99':>8} {'d mean':>8} {'d p99':>8} "
        f"{'tokens':>12} {'density':>9} {'sharing':>8}"
    )
    rows = [f"model {stats['model']}, GPU {stats['gpu']} (datasheet peaks)", head]
    groups = [*stats["sources"].items(), ("total", stats["total"])]
    for name, s in groups:
        rows.append(
            f"{name:<10} {s['requests']:>9} {s['prompt_mean']:>8.1f} {s['prompt_p99']:>8.0f} "
            f"{s['output_mean']:>8.1f} {s['output_p99']:>8.0f} {s['tokens']:>12} "
            f"{s['density']:>9.4g} {s['sharing']:>8.4f}"
        )
    return "\n".join(rows)
