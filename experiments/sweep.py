"""Run a sweep: every cell of a density x sharing grid, in parallel, resumable, then its outputs.

``OUT`` is a resumable output folder (:func:`blendsim.outputs.resumable_folder`): ``manifest.json``
holds the sweep's identity (:meth:`SweepSpec.identity`) and the cells finished so far;
``cells/<key>.json`` one finished cell each, written atomically; ``errors.log`` the tracebacks of cells
that crashed, if any; and after the run ``results.csv``, ``results.json`` and ``sweep.png``.

A rerun with the same identity skips the cells already on disk and says so; a different identity in
the same ``OUT`` is refused with the settings that differ (the grid axes may change freely: cells are
keyed by their coordinates, so a wider grid reuses the overlap).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from blendsim.experiments.cells import CellStore, run_cell
from blendsim.experiments.grid import Cell, SweepSpec
from blendsim.experiments.runners import default_jobs, run_local, run_ray
from blendsim.output_folders import ResumableFolder, resumable_folder
from blendsim.provenance import provenance

Log = Callable[[str], None]


@dataclass
class SweepOutcome:
    spec: SweepSpec
    records: list[dict[str, Any]]  # one per grid cell, in grid order
    skipped: int  # finished before this run
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    wall_s: float = 0.0


def run_sweep(
    spec: SweepSpec,
    out: Path | ResumableFolder,
    *,
    jobs: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    log: Log = print,
) -> SweepOutcome:
    """Run every unfinished cell of ``spec`` into ``out`` (a folder, or the sweep's open resumable
    folder) and return all records of the grid."""
    with resumable_folder(out, "sweep folder", "sweep", spec.identity()) as folder:
        return _run(spec, folder, jobs, ray_address, progress, log)


def _run(
    spec: SweepSpec,
    folder: ResumableFolder,
    jobs: int | None,
    ray_address: str | None,
    progress: bool,
    log: Log,
) -> SweepOutcome:
    out = folder.path
    start = time.perf_counter()
    store = CellStore(out)
    digest = spec.digest()
    cells = spec.cells
    records: dict[str, dict[str, Any]] = {}
    for cell in cells:
        rec = store.load(cell, digest)
        if rec is not None:
            records[cell.key] = rec
    todo = [c for c in cells if c.key not in records]
    if records:
        log(f"resuming: {len(records)} of {len(cells)} cells already finished in {store.dir}, skipping them")
    outcome = SweepOutcome(spec, [], skipped=len(records))
    bar = tqdm(
        total=len(todo),
        unit="cell",
        desc="sweep",
        disable=not progress or not todo,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )

    def done(task: tuple[SweepSpec, Cell], record: dict[str, Any]) -> None:
        cell = task[1]
        record["provenance"] = provenance(seed=spec.seed, profile=spec.profile or spec.gpu)
        store.save(record)
        folder.finished(cell.key, record["status"])
        records[cell.key] = record
        bar.set_postfix_str(f"{cell.key} {record['status']}", refresh=False)
        bar.update(1)

    def failed(task: tuple[SweepSpec, Cell], exc: BaseException) -> None:
        cell = task[1]
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with open(out / "errors.log", "a") as fh:
            fh.write(f"--- cell {cell.key}\n{text}\n")
        outcome.failed.append((cell, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        bar.write(f"cell {cell.key} failed: {outcome.failed[-1][1]} (traceback in {out / 'errors.log'})")
        bar.update(1)

    tasks = [(spec, c) for c in todo]
    try:
        if not tasks:
            pass
        elif ray_address:
            run_ray(run_cell, tasks, ray_address, done, failed)
        else:
            run_local(run_cell, tasks, jobs or default_jobs(), done, failed)
    finally:
        bar.close()
    outcome.records = [records[c.key] for c in cells if c.key in records]
    outcome.wall_s = time.perf_counter() - start
    return outcome
