"""Sweep records -> flat rows, ``results.csv`` / ``results.json``, and the table printed at the end.

One row per (cell, engine, policy); an infeasible cell is one row with ``status = infeasible``, its
reason, and empty numbers. ``blend_speedup`` is blend's throughput over the row's, within the same cell
and engine (1.0 on blend's own row; empty when blend was not simulated).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from blendsim.experiments.grid import SweepSpec
from blendsim.outputs import atomic_output

RESULT_KEYS = (
    "requests",
    "total_tokens",
    "throughput_tok_s",
    "makespan_s",
    "sharing",
    "optimal_sharing",
    "optimal_time_s",
    "fraction_of_optimal",
    "steps",
    "preemptions",
    "plan_s",
    "sim_s",
)
COLUMNS = (
    "target_density",
    "target_sharing",
    "status",
    "trace_density",
    "trace_sharing",
    "engine",
    "policy",
    *RESULT_KEYS,
    "blend_speedup",
    "reason",
)


def record_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    cell, trace = record["cell"], record.get("trace") or {}
    base = {
        "target_density": cell["density"],
        "target_sharing": cell["sharing"],
        "status": record["status"],
        "trace_density": trace.get("density"),
        "trace_sharing": trace.get("sharing"),
        "reason": record.get("reason"),
    }
    if record["status"] != "ok":
        return [{**base, "engine": None, "policy": None}]
    blend = {r["engine"]: r["throughput_tok_s"] for r in record["results"] if r["policy"] == "blend"}
    rows = []
    for res in record["results"]:
        row = {
            **base,
            "engine": res["engine"],
            "policy": res["policy"],
            **{k: res.get(k) for k in RESULT_KEYS},
        }
        b = blend.get(res["engine"])
        row["blend_speedup"] = b / res["throughput_tok_s"] if b and res["throughput_tok_s"] else None
        rows.append(row)
    return rows


def sweep_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for rec in records for row in record_rows(rec)]


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] | None = None) -> Path:
    """Rows as CSV (atomic); None -> empty cell, floats at full precision."""
    cols = list(columns or (rows[0].keys() if rows else []))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in cols})
    return path


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def summary(rows: Sequence[dict[str, Any]], engine: str, baseline: str) -> dict[str, float] | None:
    """Mean, min and max of blend's speedup over ``baseline`` across feasible cells."""
    xs = [
        r["blend_speedup"]
        for r in rows
        if r["engine"] == engine and r["policy"] == baseline and r["blend_speedup"]
    ]
    if not xs:
        return None
    return {"mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs), "cells": len(xs)}


def format_table(spec: SweepSpec, rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table per engine: throughput per policy, blend's speedups, blend's % of optimum."""
    baselines = [p for p in spec.policies if p != "blend"]
    has_blend = "blend" in spec.policies
    lines: list[str] = []
    for engine in spec.engines:
        head = ["density", "sharing", *[f"{p} tok/s" for p in spec.policies]]
        if has_blend:
            head += [f"blend/{b}" for b in baselines] + ["blend %opt"]
        body: list[list[str]] = []
        by_cell: dict[tuple[float, float], dict[str, dict[str, Any]]] = {}
        notes: dict[tuple[float, float], str] = {}
        for r in rows:
            key = (r["target_density"], r["target_sharing"])
            if r["status"] != "ok":
                notes[key] = str(r["reason"])
            elif r["engine"] == engine:
                by_cell.setdefault(key, {})[r["policy"]] = r
        for key in sorted(set(by_cell) | set(notes), key=lambda k: (k[1], k[0])):
            cells = [f"{key[0]:.2f}", f"{key[1]:.2f}"]
            if key in notes:
                body.append([*cells, "infeasible (reason below)"])
                continue
            pol = by_cell[key]
            cells += [_fmt(pol.get(p, {}).get("throughput_tok_s"), ",.0f") for p in spec.policies]
            if has_blend:
                cells += [_fmt(pol.get(b, {}).get("blend_speedup"), ".3f") + "x" for b in baselines]
                frac = pol.get("blend", {}).get("fraction_of_optimal")
                cells.append(_fmt(None if frac is None else 100 * frac, ".1f") + "%")
            body.append(cells)
        widths = [
            max([len(head[i])] + [len(b[i]) for b in body if len(b) == len(head)]) for i in range(len(head))
        ]
        lines.append(f"engine: {engine}")
        lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        for b in body:
            if len(b) == len(head):
                lines.append("  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)))
            else:
                lines.append("  ".join(c.rjust(w) for c, w in zip(b[:2], widths, strict=False)) + "  " + b[2])
        for base in baselines if has_blend else []:
            stats = summary(rows, engine, base)
            if stats:
                lines.append(
                    f"blend over {base}: mean {stats['mean']:.3f}x, min {stats['min']:.3f}x, "
                    f"max {stats['max']:.3f}x over {stats['cells']:.0f} feasible cells"
                )
        lines.append("")
    infeasible = sorted(
        {(r["target_density"], r["target_sharing"], r["reason"]) for r in rows if r["status"] != "ok"}
    )
    lines += [f"infeasible d={d:.2f} s={s:.2f}: {reason}" for d, s, reason in infeasible]
    return "\n".join(lines).rstrip()
