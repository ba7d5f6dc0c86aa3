"""How ``auto``'s pick measured: the order it chose in simulation against the fastest one measured.

``auto`` ranks every candidate order by simulating it on the run's profile and keeps the fastest
(:mod:`blendsim.sim.planning.policies.auto`); what the simulation cannot say is whether that pick is
also the fastest on the real engine. When a comparison holds an ``auto`` entry (``--policy
...,auto``: its replay runs the chosen order again), each backend gets one row: the order auto
chose, its measured tok/s, the fastest order measured on that backend (the non-``auto`` entries)
and ``auto`` measured over that order's measured tok/s. Issue 15's target on the CPU validation:
>= :data:`TARGET` (median of 3 runs, ``benchmarks/bench_validate_cpu.py --auto``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blendsim.executor.compare import ComparisonEntry

TARGET = 0.97  # auto's pick, measured, over the fastest measured order, at least


def auto_picks(entries: Sequence[ComparisonEntry]) -> list[dict[str, Any]]:
    """Per backend with an ``auto`` entry and another measured order: ``{backend, chosen,
    measured_tok_s, fastest, fastest_tok_s, ratio}`` (ratio: auto's measured over the fastest's)."""
    out = []
    for auto in (e for e in entries if e.policy == "auto"):
        others = [e for e in entries if e.backend == auto.backend and e.policy != "auto"]
        measured = [e for e in others if e.measured_tok_s > 0]
        if not measured:
            continue
        fastest = max(measured, key=lambda e: e.measured_tok_s)
        out.append(
            {
                "backend": auto.backend,
                "chosen": auto.extra.get("auto_chosen"),
                "measured_tok_s": auto.measured_tok_s,
                "fastest": fastest.policy,
                "fastest_tok_s": fastest.measured_tok_s,
                "ratio": auto.measured_tok_s / fastest.measured_tok_s,
            }
        )
    return out


def auto_pick_lines(picks: Sequence[dict[str, Any]]) -> list[str]:
    """The markdown section of :func:`auto_picks`' rows (none without rows)."""
    if not picks:
        return []
    lines = [
        "",
        "## auto's pick, measured",
        "",
        f"auto replays the order it chose in simulation; target: >= {TARGET:.2f}x the fastest measured.",
        "",
        "| backend | auto chose | measured tok/s | fastest measured | its tok/s | ratio |",
        "|---|---|---:|---|---:|---:|",
    ]
    lines += [
        f"| {p['backend']} | {p['chosen']} | {p['measured_tok_s']:,.1f} | {p['fastest']} | "
        f"{p['fastest_tok_s']:,.1f} | {p['ratio']:.3f}x |"
        for p in picks
    ]
    return lines
