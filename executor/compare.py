"""Measured vs simulated: per (policy, backend) throughput and makespan, blend's speedups, step MAPE.

Sign convention (one for every error here): ``error = simulated / measured - 1``, a signed fraction.
For throughput a positive error means the simulator is optimistic (predicts more tokens/s than were
measured); for makespan a positive error means it predicts a longer run. ``mape`` is the mean of
``|predicted - measured| / measured`` over steps.

``comparison.json``::

    {"format": "blendsim-comparison/1",
     "entries": [{"policy", "backend", "measured_tok_s", "simulated_tok_s", "error",
                  "measured_makespan_s", "simulated_makespan_s", "makespan_error", "complete",
                  ... backend extras: step_mape, operators, ...}, ...],
     "speedups": [{"backend", "policy", "baseline", "measured", "simulated", "error"}, ...],
     "auto_picks": [{"backend", "chosen", "measured_tok_s", "fastest", "fastest_tok_s", "ratio"}, ...],
     "meta": {...}}

``comparison.md`` is the same for people.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blendsim.errors import UserError
from blendsim.executor.auto_pick import auto_pick_lines, auto_picks
from blendsim.outputs import atomic_output, write_json

if TYPE_CHECKING:
    from blendsim.executor.records import MeasuredRun
    from blendsim.executor.torch_backend import ReplayResult
    from blendsim.sim.simulation.result import SimResult

FORMAT = "blendsim-comparison/1"
TARGET_POLICY = "blend"


def signed_error(measured: float, simulated: float) -> float:
    """``simulated / measured - 1`` (NaN when nothing was measured)."""
    return simulated / measured - 1.0 if measured > 0 else math.nan


@dataclass(frozen=True)
class ComparisonEntry:
    """One policy on one backend, against the simulation of the same steps or trace."""

    policy: str
    backend: str
    measured_tok_s: float
    simulated_tok_s: float
    measured_makespan_s: float
    simulated_makespan_s: float
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> float:
        return signed_error(self.measured_tok_s, self.simulated_tok_s)

    @property
    def makespan_error(self) -> float:
        return signed_error(self.measured_makespan_s, self.simulated_makespan_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "backend": self.backend,
            "measured_tok_s": self.measured_tok_s,
            "simulated_tok_s": self.simulated_tok_s,
            "error": self.error,
            "measured_makespan_s": self.measured_makespan_s,
            "simulated_makespan_s": self.simulated_makespan_s,
            "makespan_error": self.makespan_error,
            "complete": self.complete,
            **self.extra,
        }


def entry_from_replay(replay: ReplayResult) -> ComparisonEntry:
    """A torch replay compared step by step with the steps it replayed (same token numerator)."""
    d = replay.to_dict()
    extra = {
        k: d[k]
        for k in (
            "step_mape",
            "step_mape_wall",
            "operators",
            "clock",
            "device",
            "steps",
            "simulated_steps",
            "engine",
            "interrupted",
        )
    }
    return ComparisonEntry(
        replay.policy,
        "torch" if replay.engine == "serial" else f"torch-{replay.engine}",
        d["throughput_tok_s"],
        d["simulated_tok_s"],
        d["makespan_s"],
        d["simulated_makespan_s"],
        replay.complete,
        extra,
    )


def entry_from_results(sim: SimResult, measured: MeasuredRun) -> ComparisonEntry:
    """An end-to-end run (e.g. vLLM) against the simulation of the whole trace it ran."""
    if sim.policy != measured.policy:
        raise UserError(f"comparing policy {measured.policy!r} with a simulation of {sim.policy!r}")
    extra: dict[str, Any] = {
        "steps": measured.steps,
        "sharing": measured.sharing,
        "preemptions": measured.preemptions,
        "device": measured.device,
        "engine": measured.engine,
        "simulated_sharing": sim.sharing,
        "simulated_steps": sim.steps_run,
    }
    return ComparisonEntry(
        measured.policy,
        measured.backend,
        measured.throughput_tok_s,
        sim.throughput_tok_s,
        measured.makespan_s,
        sim.makespan_s,
        measured.completed,
        extra,
    )


def speedups(entries: Sequence[ComparisonEntry], target: str = TARGET_POLICY) -> list[dict[str, Any]]:
    """Per backend, ``target``'s throughput over each other policy's, measured and simulated."""
    out = []
    for backend in dict.fromkeys(e.backend for e in entries):
        mine = {e.policy: e for e in entries if e.backend == backend}
        if target not in mine:
            continue
        t = mine[target]
        for base, b in mine.items():
            if base == target or b.measured_tok_s <= 0 or b.simulated_tok_s <= 0:
                continue
            meas = t.measured_tok_s / b.measured_tok_s
            sim = t.simulated_tok_s / b.simulated_tok_s
            out.append(
                {
                    "backend": backend,
                    "policy": target,
                    "baseline": base,
                    "measured": meas,
                    "simulated": sim,
                    "error": signed_error(meas, sim),
                }
            )
    return out


@dataclass
class Comparison:
    entries: list[ComparisonEntry]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        errors = [abs(e.error) for e in self.entries if math.isfinite(e.error)]
        return {
            "format": FORMAT,
            "entries": [e.to_dict() for e in self.entries],
            "speedups": speedups(self.entries),
            "auto_picks": auto_picks(self.entries),
            "max_abs_error": max(errors, default=None),
            "meta": self.meta,
        }

    def to_markdown(self) -> str:
        d = self.to_dict()
        lines = ["# Measured vs simulated", ""]
        lines += [f"- {k}: {v}" for k, v in self.meta.items() if not isinstance(v, dict)]
        lines += [
            "",
            "Error = simulated / measured - 1 (positive: the simulator predicts more "
            "throughput, or a longer makespan, than measured).",
            "",
            "| policy | backend | measured tok/s | simulated tok/s | error | measured makespan "
            "| simulated makespan | makespan error | step MAPE | complete |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for e in d["entries"]:
            step = e.get("step_mape")
            lines.append(
                f"| {e['policy']} | {e['backend']} | {e['measured_tok_s']:,.1f} | "
                f"{e['simulated_tok_s']:,.1f} | {_pct(e['error'])} | {e['measured_makespan_s']:.2f} s | "
                f"{e['simulated_makespan_s']:.2f} s | {_pct(e['makespan_error'])} | "
                f"{'-' if step is None else f'{step:.1%}'} | {'yes' if e['complete'] else 'no'} |"
            )
        if d["speedups"]:
            lines += [
                "",
                "## Speedup of blend",
                "",
                "| backend | over | measured | simulated | error |",
                "|---|---|---:|---:|---:|",
            ]
            lines += [
                f"| {s['backend']} | {s['baseline']} | {s['measured']:.3f}x | {s['simulated']:.3f}x | "
                f"{_pct(s['error'])} |"
                for s in d["speedups"]
            ]
        kernel = [e for e in d["entries"] if "kernel_profile_tok_s" in e]
        if kernel:
            lines += [
                "",
                "## vLLM predicted by the kernel profile instead of the engine-calibrated one",
                "",
                "| policy | measured tok/s | kernel profile tok/s | error |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {e['policy']} | {e['measured_tok_s']:,.1f} | {e['kernel_profile_tok_s']:,.1f} | "
                f"{_pct(e['kernel_profile_error'])} |"
                for e in kernel
            ]
        lines += auto_pick_lines(d["auto_picks"])
        lines += _serial_reference_lines(d["entries"])
        ops = [(e["policy"], e["operators"]) for e in d["entries"] if e.get("operators")]
        if ops:
            lines += [
                "",
                "## Torch replay by operator",
                "",
                "| policy | operator | measured s | predicted s | bias | MAPE |",
                "|---|---|---:|---:|---:|---:|",
            ]
            for policy, table in ops:
                for op, v in table.items():
                    bias = _pct(v["bias"]) if "bias" in v else "-"
                    err = f"{v['mape']:.1%}" if "mape" in v else "-"
                    lines.append(
                        f"| {policy} | {op} | {v['measured_s']:.2f} | {v['predicted_s']:.2f} | {bias} | "
                        f"{err} |"
                    )
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> list[Path]:
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "comparison.json", self.to_dict())
        with atomic_output(d / "comparison.md") as tmp:
            tmp.write_text(self.to_markdown())
        return [d / "comparison.json", d / "comparison.md"]


def _serial_reference_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The overlapped replay beside the same steps run serially on both cores (measured only)."""
    ref = [e for e in entries if e.get("serial_reference", {}).get("measured_tok_s")]
    if not ref:
        return []
    lines = [
        "",
        "## Overlap measured: the same steps run serially on both cores",
        "",
        "| policy | overlapped tok/s | serial tok/s (threads) | overlapped / serial |",
        "|---|---:|---:|---:|",
    ]
    for e in ref:
        r = e["serial_reference"]
        lines.append(
            f"| {e['policy']} | {e['measured_tok_s']:,.1f} | {r['measured_tok_s']:,.1f} ({r['threads']}) | "
            f"{e['measured_tok_s'] / r['measured_tok_s']:.3f}x |"
        )
    return lines


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:+.1%}"
