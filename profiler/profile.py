"""A ``Profile``: hardware peaks plus the fitted step-model parameters, stored as JSON.

A profile is either *datasheet* (the built-ins ``a100-80g``, ``h100-sxm``, ``h200``: datasheet peaks and
documented default efficiencies, ``provenance.measured = false``, valid for any model) or *measured*
(written by ``blendsim profile``: fitted on one device for one model, which it names).

Before it can time steps a profile is bound to a model (and a tensor-parallel degree) with
:meth:`Profile.bind`; :func:`resolve_profile` does that and all the user-facing checks.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blendsim.errors import UserError, unknown
from blendsim.options import is_finite_number, is_integer, is_number
from blendsim.outputs import write_json
from blendsim.profiler.cost import BatchShape, StepTime
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.models import ModelSpec, check_tp
from blendsim.profiler.step_model import StepModel
from blendsim.profiler.step_params import StepParams
from blendsim.provenance import check_format, provenance

FORMAT_NAME = "blendsim-profile"
FORMAT_VERSION = 1  # bump when the layout changes; from_dict reads every version up to it
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
BUILTIN_DIR = Path(__file__).parent / "profiles"
DEFAULT_GPU = "a100-80g"


@dataclass(frozen=True)
class Provenance:
    """Where a profile's numbers come from. ``fit_error`` maps operator -> MAPE (a fraction)."""

    measured: bool
    device: str
    date: str | None = None  # ISO date of the measurement; None in the deterministic built-ins
    software: dict[str, str] = field(default_factory=dict)
    fit_error: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> where its value comes from
    notes: str = ""


@dataclass(frozen=True)
class Profile:
    """Hardware + step-model parameters + provenance. ``model`` None means valid for any model.

    Invariant: ``step_time``/``optimal_time`` work only on a bound profile (``bound_model`` set).
    """

    name: str
    hardware: HardwareSpec
    model: str | None
    params: StepParams
    provenance: Provenance
    bound_model: ModelSpec | None = field(default=None, compare=False, repr=False)
    _steps: StepModel | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = self.params.validate()
        if problems:
            raise UserError(f"profile {self.name!r} has invalid parameters: {'; '.join(problems)}")
        if self.bound_model is not None:
            object.__setattr__(self, "_steps", StepModel(self.params, self.bound_model, self.hardware))

    @property
    def kappa(self) -> float:
        return self.params.kappa

    @property
    def steps(self) -> StepModel:
        """The bound step model (per-operator times, ridge point)."""
        if self._steps is None:
            raise RuntimeError(f"profile {self.name!r} is not bound to a model; call bind(model) first")
        return self._steps

    def bind(self, model: ModelSpec, tp: int = 1) -> Profile:
        """This profile for ``model`` on ``tp`` GPUs (tensor parallel). Checks the model matches and
        that ``tp`` divides its heads."""
        check_tp(model, tp)
        if self.model is not None and self.model != model.name:
            raise UserError(
                f"profile {self.name!r} was measured for model {self.model!r}, "
                f"not {model.name!r}; profile that model or use a built-in profile"
            )
        if tp != 1 and self.hardware.interconnect_bandwidth <= 0:
            raise UserError(
                f"tensor parallelism (tp={tp}) needs a profile with an interconnect "
                f"bandwidth; {self.name!r} has none"
            )
        return dataclasses.replace(self, hardware=self.hardware.with_tp(tp), bound_model=model)

    def step_time(self, shape: BatchShape, engine: str = "overlap") -> StepTime:
        """Predicted time of one step under ``engine`` ("serial" or "overlap"). Cheap: floats only."""
        steps = self._steps
        if steps is None:
            raise RuntimeError(f"profile {self.name!r} is not bound to a model; call bind(model) first")
        return steps.step_time(shape, engine)

    def optimal_time(self, total: BatchShape, engine: str = "overlap") -> float:
        """Practical optimum T_o of a workload's totals (see ``StepModel.optimal_time``)."""
        return self.steps.optimal_time(total, engine)

    # ---- JSON ----

    def to_dict(self) -> dict[str, Any]:
        hw = dataclasses.asdict(self.hardware.with_tp(1))  # stored per GPU; bind() applies tp
        return {
            "format": FORMAT,
            "name": self.name,
            "model": self.model,
            "hardware": hw,
            "params": dataclasses.asdict(self.params),
            "provenance": dataclasses.asdict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Any, origin: str = "profile") -> Profile:
        """Parse a profile dict of any format version up to :data:`FORMAT_VERSION` (a newer one is a
        UserError naming both versions); any problem is a UserError naming ``origin``."""
        name, _, version = (
            str(data.get("format", "")).partition("/") if isinstance(data, dict) else ("", "", "")
        )
        if name != FORMAT_NAME:
            raise UserError(f'{origin} is not a blendsim profile (expected "format": "{FORMAT}")')
        check_format(origin, int(version) if version.isdigit() else version, FORMAT_VERSION, oldest=1)
        try:
            hardware = HardwareSpec(**_fields(HardwareSpec, data["hardware"], floats=True))
            params = StepParams(**_fields(StepParams, data["params"], floats=True))
            prov = Provenance(**_fields(Provenance, data["provenance"], floats=False))
            model = data["model"]
            if model is not None and not isinstance(model, str):
                raise TypeError("model must be a string or null")
            return cls(str(data["name"]), hardware, model, params, prov)
        except UserError as exc:
            raise UserError(f"{origin}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{origin} is not a valid profile: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the profile JSON atomically, with what wrote it (``written_by``: provenance)."""
        write_json(path, {**self.to_dict(), "written_by": provenance(profile=self.name)})


def _fields(kind: type, raw: Any, floats: bool) -> dict[str, Any]:
    """The dataclass fields of ``kind`` from ``raw``; unknown keys are errors. With ``floats``, each
    value takes its field's declared type: JSON gives lists for tuples and may give 2.0 for an int (the
    step model is compiled, and a compiled dataclass checks the types it is given)."""
    if not isinstance(raw, dict):
        raise TypeError(f"{kind.__name__} must be an object")
    # annotations are strings in Python and types in the compiled model: compare by name
    declared = {f.name: getattr(f.type, "__name__", str(f.type)) for f in dataclasses.fields(kind) if f.init}
    extra = set(raw) - set(declared)
    if extra:
        raise KeyError(f"unknown {kind.__name__} field(s) {', '.join(sorted(extra))}")
    if not floats:
        return dict(raw)
    section = "hardware" if kind is HardwareSpec else "params"
    return {k: _as_declared(f"{section}.{k}", declared[k], v) for k, v in raw.items()}


def _as_declared(name: str, declared: str, value: Any) -> Any:
    """``value`` as the type ``declared`` (a dataclass field's annotation): float, int or a tuple of
    floats; a value of another kind is a TypeError naming ``name``. Other types pass unchanged."""
    number = is_number(value)
    if declared == "float":
        if not number:
            raise TypeError(f"{name}={value!r} must be a number")
        return _as_float(name, value)
    if declared == "int":
        if not (number and (isinstance(value, int) or value.is_integer())):
            raise TypeError(f"{name}={value!r} must be an integer")
        return int(value)
    if declared.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(is_number(v) for v in value):
            raise TypeError(f"{name}={value!r} must be a list of numbers")
        return tuple(_as_float(name, v) for v in value)
    return value


def _as_float(name: str, value: int | float) -> float:
    """A number as a float; an int past the float range is a TypeError naming ``name`` (``float()``
    would raise OverflowError, which no caller expects of a profile)."""
    if is_integer(value) and not is_finite_number(value):
        raise TypeError(f"{name} must be a number in the float range, got an integer too large for one")
    return float(value)


def load_profile(path: str | Path) -> Profile:
    """A profile from a JSON file; a missing or invalid file is a UserError."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"profile file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"profile file {str(p)!r} is not readable JSON: {exc}") from None
    return Profile.from_dict(data, origin=f"profile file {str(p)!r}")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def builtin_profile(name: str) -> Profile:
    """A built-in profile by name (the datasheet GPUs and any committed measured profile)."""
    path = BUILTIN_DIR / f"{name}.json"
    if not path.is_file():
        raise unknown("GPU profile", name, builtin_names())
    return load_profile(path)


def resolve_profile(gpu: str | None, profile_path: str | None, model: ModelSpec, tp: int = 1) -> Profile:
    """The profile a command should use, bound to ``model`` and ``tp``.

    ``profile_path`` wins when given (``gpu`` is then ignored); otherwise the built-in named ``gpu``
    (default ``a100-80g``). Unknown GPU, invalid file and a profile of another model are UserErrors.
    """
    profile = load_profile(profile_path) if profile_path else builtin_profile(gpu or DEFAULT_GPU)
    return profile.bind(model, tp)
