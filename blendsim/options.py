"""Command-line options generated from frozen config dataclasses: one place per option.

A config field declared with :func:`option` carries its default, its help line, its check and
(optionally) its flag name; :func:`check_fields` runs every check when the config is built (its
``__post_init__``), so a config never holds a value the model cannot mean, whoever builds it.
:func:`add_options` turns the fields into argparse options and :func:`config_from_args` turns the
parsed arguments back into a config. A verb that needs another default (the vLLM backend's 128-token
KV blocks) passes it to both, declared once beside the verb.

Errors: a failed check raises :class:`FieldError`, which names the field and the value (library
code knows nothing of flags); :func:`config_from_args` re-raises it naming the flag, at the CLI edge.
Booleans get ``--flag / --no-flag``; choices are listed in ``--help``.

Every parser of the CLI is a :class:`Parser`: its ``type=float`` options refuse NaN and infinities
and its ``type=int`` options values beyond int64, whoever declares them, so no verb can forget.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

from blendsim.errors import UserError

Check = Callable[[Any], str | None]  # an error message about the value, or None when it is valid
T = TypeVar("T")
INT64_MAX = 2**63 - 1


def finite_float(text: str) -> float:
    """A command-line number: finite (``nan``, ``inf`` and overflowing literals are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def int64(text: str) -> int:
    """A command-line integer that fits in int64 (the arrays it ends up in)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if abs(value) > INT64_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (at most {INT64_MAX} in magnitude)")
    return value


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose ``type=float`` is :func:`finite_float` and ``type=int`` is
    :func:`int64`. Subparsers are made of the same class, so every verb's options get both."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("type", float, finite_float)
        self.register("type", int, int64)


@dataclass(frozen=True)
class Option:
    """What a config field's command-line option is (see :func:`option`)."""

    help: str
    flag: str = ""  # without dashes; default: the field name with '-' for '_'
    choices: tuple[str, ...] = ()
    check: Check | None = None
    cli: bool = True  # False: a config field with no option (tests, what-ifs, derived values)
    metavar: str | None = None


class FieldError(UserError):
    """A config field holds a value it cannot mean: ``field`` and what is wrong (``problem``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def option(
    default: Any,
    help: str,
    *,
    flag: str = "",
    choices: Sequence[str] = (),
    check: Check | None = None,
    cli: bool = True,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with its option (module docstring)."""
    meta = Option(help, flag, tuple(choices), check, cli, metavar)
    return dataclasses.field(default=default, metadata={"option": meta})


def field_option(field: dataclasses.Field[Any]) -> Option | None:
    meta = field.metadata.get("option")
    return meta if isinstance(meta, Option) else None


def flag_of(field: dataclasses.Field[Any]) -> str:
    meta = field_option(field)
    return "--" + ((meta.flag if meta else "") or field.name.replace("_", "-"))


# ---------------------------------------------------------------------- checks
def at_least(low: float) -> Check:
    def check(v: Any) -> str | None:
        return None if is_number(v) and v >= low else f"must be >= {low:g}, got {v!r}"

    return check


def in_range(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = is_number(v) and (low < v if low_open else low <= v) and v <= high
        return None if ok else f"must be in {'(' if low_open else '['}{low:g}, {high:g}], got {v!r}"

    return check


def positive_multiple(of: int) -> Check:
    def check(v: Any) -> str | None:
        ok = is_integer(v) and v >= of and v % of == 0
        return None if ok else f"must be a positive multiple of {of}, got {v!r}"

    return check


def finite_at_least(low: float) -> Check:
    def check(v: Any) -> str | None:
        return None if is_finite_number(v) and v >= low else f"must be finite and >= {low:g}, got {v!r}"

    return check


def finite_above(low: float) -> Check:
    def check(v: Any) -> str | None:
        ok = is_finite_number(v) and v > low
        return None if ok else f"must be finite and > {low:g}, got {v!r}"

    return check


def is_integer(v: object) -> TypeGuard[int]:
    """An int, not a bool (an int subclass that JSON and Python hand over as one)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> TypeGuard[int | float]:
    """An int or float, not a bool; infinities pass, NaN does not (callers bound the range)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def is_finite_number(v: object) -> TypeGuard[int | float]:
    """A number (:func:`is_number`) that is also finite as a float (an int past the float range,
    which ``math.isfinite`` would raise OverflowError on, is not)."""
    if is_integer(v):
        return abs(v) <= sys.float_info.max
    return is_number(v) and math.isfinite(v)


def check_fields(config: Any) -> None:
    """Run every field's choices and check (call from ``__post_init__``); FieldError on the first."""
    for f in dataclasses.fields(config):
        meta = field_option(f)
        if meta is None:
            continue
        value = getattr(config, f.name)
        if meta.choices and value not in meta.choices:
            raise FieldError(f.name, f"must be one of {', '.join(meta.choices)}, got {value!r}")
        if meta.check is not None and value is not None and (problem := meta.check(value)) is not None:
            raise FieldError(f.name, problem)


# ---------------------------------------------------------------------- argparse
def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    defaults: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    lists: Iterable[str] = (),
) -> None:
    """Add an option per field of ``cls`` (not ``exclude``d); ``defaults`` replace the fields'
    defaults; fields in ``lists`` take a comma list (or ``all``) of their choices."""
    defaults, skip, many = dict(defaults or {}), set(exclude), set(lists)
    for f in dataclasses.fields(cls):
        meta = field_option(f)
        if meta is None or not meta.cli or f.name in skip:
            continue
        default = defaults.get(f.name, f.default)
        kw: dict[str, Any] = {"dest": f.name, "default": default, "metavar": meta.metavar}
        if isinstance(default, bool) or f.type in ("bool", bool):
            kw.pop("metavar")
            kw.update(action=argparse.BooleanOptionalAction, help=f"{meta.help} (default: {_shown(default)})")
        elif meta.choices:
            listed = "a comma list of " if f.name in many else "one of "
            words = ", or all" if f.name in many else ""
            kw.update(help=f"{meta.help}: {listed}{', '.join(meta.choices)}{words} (default: {default})")
            kw["metavar"] = meta.metavar or f.name.upper()
        else:
            kind = _number_type(f)
            kw.update(type=kind, help=f"{meta.help} (default: {_shown(default)})")
            kw["metavar"] = meta.metavar or ("N" if kind is int64 else "X")
        parser.add_argument(flag_of(f), **kw)


def config_from_args(cls: Callable[..., T], args: argparse.Namespace, **fixed: Any) -> T:
    """A ``cls`` from the parsed options (the fields' names are their ``dest``) and ``fixed``
    values; a FieldError is re-raised as a UserError that names the flag."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    values.update(fixed)
    try:
        return cls(**values)
    except FieldError as exc:
        raise UserError(f"{flag_of(fields[exc.field])} {exc.problem}") from None


def non_defaults(config: Any, skip: Iterable[str] = ()) -> tuple[tuple[str, Any], ...]:
    """``(field, value)`` of every field of ``config`` off its default, in field order."""
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in skip and value != f.default:
            out.append((f.name, value))
    return tuple(out)


def parse_choice_list(
    value: str, valid: Sequence[str], what: str, all_words: Sequence[str] = ("all",)
) -> tuple[str, ...]:
    """``a,b`` -> ``("a", "b")`` (each one of ``valid``, no repeats); an ``all_words`` word means
    every one of ``valid``. UserError on an unknown, repeated or missing name."""
    names = [v.strip() for v in str(value).split(",")]
    if len(names) == 1 and names[0] in all_words:
        return tuple(valid)
    listed = ", ".join(valid) + (f" or {all_words[0]}" if all_words else "")
    if not all(names):
        raise UserError(f"empty {what} name in {value!r}; valid: {listed}")
    bad = [n for n in names if n not in valid]
    if bad:
        raise UserError(f"unknown {what} {bad[0]!r}; valid: {listed}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"{what} {repeated[0]!r} is given twice in {value!r}")
    return tuple(names)


def _number_type(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    kind = str(f.type)
    return int64 if "int" in kind and "float" not in kind else finite_float


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return "derived" if default is None else str(default)
