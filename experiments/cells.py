"""One sweep cell: build its trace, simulate every policy and engine on it, keep the record on disk.

A cell record is a JSON object: ``digest`` (the sweep identity it belongs to), ``cell`` (density,
sharing, key), ``status`` (``ok`` or ``infeasible``), ``reason`` (why infeasible), ``trace`` (achieved
density and sharing, request counts per source) and ``results`` (one ``SimResult.to_dict()`` per
engine and policy, per-step series left out). Records are written atomically, one file per cell, so a
killed sweep leaves only whole cells behind.
"""

from __future__ import annotations

import json
import socket
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.experiments.grid import CELL_FORMAT, Cell, SweepSpec
from blendsim.outputs import write_json
from blendsim.profiler.cost import set_density
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.traces.trace import Trace


@lru_cache(maxsize=8)
def resolve(model_name: str, gpu: str | None, profile_path: str | None, tp: int) -> tuple[ModelSpec, Any]:
    """(ModelSpec, Profile) for a spec; cached per worker process."""
    from blendsim.profiler.profile import resolve_profile

    model = get_model(model_name)
    return model, resolve_profile(gpu, profile_path, model, tp)


def trace_summary(trace: Trace, model: ModelSpec, hw: Any) -> dict[str, Any]:
    """What the mixer actually built: density on the GPU's datasheet peaks, sharing, counts."""
    counts = np.bincount(trace.source_codes, minlength=len(trace.sources))
    return {
        "requests": len(trace),
        "density": set_density(trace.prompt_len, trace.output_len, model, hw, trace.saved_tokens()),
        "sharing": float(trace.sharing()),
        "prompt_tokens": int(trace.prompt_len.sum()),
        "output_tokens": int(trace.output_len.sum()),
        "sources": {name: int(c) for name, c in zip(trace.sources, counts, strict=True)},
    }


def run_cell(spec: SweepSpec, cell: Cell) -> dict[str, Any]:
    """Build the cell's trace and simulate every (engine, policy). Never raises UserError: a cell the
    mixer cannot build (or the simulator cannot run as asked) comes back ``infeasible`` with the reason."""
    from blendsim.sim.simulation.run import simulate_policy
    from blendsim.traces.mixer import make_trace

    start = time.perf_counter()
    record: dict[str, Any] = {
        "format": CELL_FORMAT,
        "digest": spec.digest(),
        "cell": {"density": cell.density, "sharing": cell.sharing, "key": cell.key},
        "status": "ok",
        "reason": None,
        "trace": None,
        "results": [],
        "host": socket.gethostname(),
    }
    model, profile = resolve(spec.model, spec.gpu, spec.profile, spec.tp)
    try:
        trace = make_trace(
            list(spec.mix), cell.density, cell.sharing, spec.requests, model, profile.hardware, seed=spec.seed
        )
        record["trace"] = trace_summary(trace, model, profile.hardware)
        options = dict(spec.sim_options)
        estimation = spec.estimation
        for engine in spec.engines:
            for policy in spec.policies:
                config = spec.engine_config(engine)
                result = simulate_policy(
                    trace,
                    policy,
                    model,
                    profile,
                    config,
                    spec.dp,
                    spec.seed,
                    estimation=estimation,
                    **options,
                )
                record["results"].append(result.to_dict())
    except UserError as exc:
        record.update(status="infeasible", reason=str(exc), results=[])
    record["wall_s"] = time.perf_counter() - start
    return record


class CellStore:
    """``OUT/cells/<key>.json``, one per finished cell."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "cells"

    def path(self, cell: Cell) -> Path:
        return self.dir / f"{cell.key}.json"

    def load(self, cell: Cell, digest: str) -> dict[str, Any] | None:
        """The finished record of ``cell`` for this sweep identity, or None (missing, torn, foreign)."""
        try:
            record = json.loads(self.path(cell).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(record, dict) or record.get("digest") != digest:
            return None
        return record

    def save(self, record: dict[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / f"{record['cell']['key']}.json"
        return write_json(target, record, indent=1, sort_keys=True)
