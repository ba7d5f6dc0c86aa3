"""A sweep's grid: which traces to build and what to simulate on each.

A :class:`SweepSpec` is everything that decides a sweep's numbers. Its *grid axes* (densities and
sharing ratios) say which cells exist; everything else (:meth:`SweepSpec.identity`) says what a cell's
result means. Two sweeps with the same identity may share cell files, whatever their grids: a cell's
file name is its (density, sharing) coordinate, so a rerun skips cells already done and a wider grid
reuses the overlap.

Invariants: densities and sharings are sorted, unique, rounded to 6 decimals; densities > 0;
0 <= sharing < 1; policies and engines are non-empty, unique and valid.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blendsim import __version__
from blendsim.errors import UserError
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.simulation.config import EngineConfig

DEFAULT_MIX = ("burstgpt", "mmlu", "openvid")
DEFAULT_DENSITIES = "0.8:1.4:0.05"
MAX_GRID_VALUES = 1000  # per axis; a typo like 0.8:1.4:0.00001 should fail fast, not run for days
CELL_FORMAT = 1  # bump when the cell JSON layout changes


def parse_values(spec: str, what: str) -> tuple[float, ...]:
    """``A:B:STEP`` (inclusive of B up to float noise) or a comma list ``a,b,c``."""
    text = spec.strip()
    if not text:
        raise UserError(f"empty {what} list; give A:B:STEP (e.g. 0.8:1.4:0.05) or a list like 0.9,1.4")
    try:
        if ":" in text:
            parts = [float(x) for x in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not step > 0 or stop < start:
                raise UserError(f"bad {what} range {spec!r}: need A <= B and STEP > 0 (e.g. 0.8:1.4:0.05)")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_GRID_VALUES:
                raise UserError(f"{what} range {spec!r} has {count} values; at most {MAX_GRID_VALUES}")
            values = [start + i * step for i in range(count)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"bad {what} spec {spec!r}; give A:B:STEP (e.g. 0.8:1.4:0.05) or a comma list like 0.9,1.4"
        ) from None
    if any(not math.isfinite(v) for v in values):
        raise UserError(f"bad {what} spec {spec!r}: values must be finite numbers")
    return tuple(sorted({round(v, 6) for v in values}))


def file_digest(path: str) -> str:
    """Content hash of a profile file, so an edited profile is a different sweep."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise UserError(f"cannot read profile {path!r}: {exc.strerror}") from None


@dataclass(frozen=True)
class Cell:
    """One grid point: one trace, every policy and engine simulated on it."""

    density: float
    sharing: float

    @property
    def key(self) -> str:
        return f"d{self.density:.4f}_s{self.sharing:.4f}"


@dataclass(frozen=True)
class SweepSpec:
    mix: tuple[str, ...] = DEFAULT_MIX
    densities: tuple[float, ...] = ()
    sharings: tuple[float, ...] = ()
    policies: tuple[str, ...] = ("fifo", "dfs", "balance", "blend")
    engines: tuple[str, ...] = ("overlap",)
    requests: int = 2000
    model: str = "llama-3-8b"
    gpu: str | None = "a100-80g"
    profile: str | None = None  # path of a profile JSON (instead of gpu)
    profile_digest: str | None = None
    tp: int = 1
    dp: int = 1
    seed: int = 0
    sim_options: tuple[tuple[str, Any], ...] = field(default=())  # planner options of simulate_policy
    engine_options: tuple[tuple[str, Any], ...] = field(default=())  # EngineConfig fields off their defaults
    estimation_options: tuple[tuple[str, Any], ...] = field(default=())  # EstimationConfig fields, likewise

    def __post_init__(self) -> None:
        if not self.densities or not self.sharings:
            raise UserError("a sweep needs at least one density and one sharing ratio")
        bad_d = [d for d in self.densities if d <= 0]
        if bad_d:
            raise UserError(f"density {bad_d[0]} is not positive; densities must be > 0")
        bad_s = [s for s in self.sharings if not 0 <= s < 1]
        if bad_s:
            raise UserError(f"sharing ratio {bad_s[0]} is outside [0, 1)")
        for name, value in (
            ("requests", self.requests),
            ("data-parallel replicas", self.dp),
            ("tp", self.tp),
        ):
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        if not self.mix:
            raise UserError("the source mix is empty; give source names like burstgpt,mmlu,openvid")

    def engine_config(self, engine: str) -> EngineConfig:
        """The EngineConfig a cell simulates ``engine`` with."""
        return EngineConfig(engine=engine, **dict(self.engine_options))

    @property
    def estimation(self) -> EstimationConfig:
        """How every cell's planning estimates output lengths."""
        return EstimationConfig(**dict(self.estimation_options))

    @property
    def cells(self) -> list[Cell]:
        """Grid cells, sharing-major then density, the order results are reported in."""
        return [Cell(d, s) for s in self.sharings for d in self.densities]

    def identity(self) -> dict[str, Any]:
        """Everything that decides a cell's result (not the grid axes, not how it is run)."""
        ident = {k: v for k, v in asdict(self).items() if k not in ("densities", "sharings", "profile")}
        ident["sim_options"] = [list(kv) for kv in self.sim_options]
        ident["engine_options"] = [list(kv) for kv in self.engine_options]
        ident["estimation_options"] = [list(kv) for kv in self.estimation_options]
        if not self.estimation_options:  # the paper's estimation: digests of earlier sweeps still match
            del ident["estimation_options"]
        ident["mix"], ident["policies"], ident["engines"] = (
            list(self.mix),
            list(self.policies),
            list(self.engines),
        )
        ident["blendsim_version"] = __version__
        ident["cell_format"] = CELL_FORMAT
        return ident

    def digest(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def describe(self) -> str:
        hw = (
            f"profile {self.profile}"
            if self.profile
            else f"{self.gpu}" + (f" x{self.tp} (TP)" if self.tp > 1 else "")
        )
        return (
            f"{_count(len(self.densities), 'density', 'densities')} x "
            f"{_count(len(self.sharings), 'sharing ratio', 'sharing ratios')} = "
            f"{_count(len(self.cells), 'cell', 'cells')}; "
            f"policies {','.join(self.policies)}; engine {','.join(self.engines)}"
            + "".join(f" {k}={v}" for k, v in (*self.engine_options, *self.estimation_options))
            + "; "
            f"mix {','.join(self.mix)}; {self.requests} requests per trace; model {self.model} on {hw}"
            + (f"; dp {self.dp}" if self.dp > 1 else "")
            + f"; seed {self.seed}"
        )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
