"""The compiled core (setup.py): it is what the tests run, a stale build is refused with its remedy,
and the profile boundary hands the compiled step model values of the declared types."""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

import pytest

import blendsim.profiler.step_model  # noqa: F401  (imported for is_compiled)
import blendsim.sim.simulation.engine  # noqa: F401  (imported for is_compiled)
from blendsim.compiled import check_fresh, is_compiled, source_root, stale_sources
from blendsim.errors import InstallError, UserError
from blendsim.profiler.profile import builtin_profile, load_profile
from blendsim.profiler.step_params import StepParams

SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


@pytest.mark.skipif(os.environ.get("BLENDSIM_COMPILE") == "0", reason="built with BLENDSIM_COMPILE=0")
def test_the_core_runs_compiled() -> None:
    """The README's install compiles the step loop and the step model; a build that fell back to pure
    Python (no C compiler) would run correct but twice as slow, so the tests say so."""
    for module in ("blendsim.sim.simulation.engine", "blendsim.profiler.step_model"):
        assert is_compiled(module), f"{module} is not compiled: is a C compiler installed?"


def fake_checkout(tmp_path: Path) -> Path:
    (tmp_path / "setup.py").write_text("")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("")
    (pkg / f"mod{SUFFIX}").write_text("")
    return pkg


def test_a_source_newer_than_its_build_is_refused(tmp_path: Path) -> None:
    pkg = fake_checkout(tmp_path)
    os.utime(pkg / f"mod{SUFFIX}", (1_000, 1_000))
    os.utime(pkg / "mod.py", (2_000, 2_000))
    assert source_root(pkg) == tmp_path
    assert stale_sources(pkg) == [pkg / "mod.py"]
    with pytest.raises(InstallError, match=r"older than pkg/mod\.py: rebuild it with `pip install -e \.`"):
        check_fresh(str(pkg / "__init__.py"))
    os.utime(pkg / f"mod{SUFFIX}", (3_000, 3_000))  # rebuilt
    check_fresh(str(pkg / "__init__.py"))


def test_an_installed_package_is_never_checked(tmp_path: Path) -> None:
    pkg = fake_checkout(tmp_path)
    (tmp_path / "setup.py").unlink()  # site-packages: no setup.py above the package
    os.utime(pkg / f"mod{SUFFIX}", (1_000, 1_000))
    assert source_root(pkg) is None
    check_fresh(str(pkg / "__init__.py"))


def profile_with(tmp_path: Path, **params: object) -> Path:
    data = builtin_profile("a100-80g").to_dict()
    data["params"].update(params)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path


def test_profile_values_take_their_declared_types(tmp_path: Path) -> None:
    """JSON gives lists for the GEMM table and may give 2.0 for an integer: the loader converts them,
    as the compiled dataclass checks what it is given."""
    params = load_profile(
        profile_with(tmp_path, nano_batches=3.0, gemm_table_tokens=[1, 8], gemm_table_eff=[0.5, 1])
    ).params
    assert isinstance(params, StepParams)
    assert params.nano_batches == 3 and isinstance(params.nano_batches, int)
    assert params.gemm_table_tokens == (1.0, 8.0) and params.gemm_table_eff == (0.5, 1.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nano_batches", 2.5, r"params\.nano_batches=2\.5 must be an integer"),
        ("kappa", "0.3", r"params\.kappa='0\.3' must be a number"),
        ("kappa", True, r"params\.kappa=True must be a number"),
        ("gemm_table_eff", [0.5, "x"], r"params\.gemm_table_eff=\[0\.5, 'x'\] must be a list of numbers"),
        ("kappa", 10**400, r"params\.kappa must be a number in the float range"),  # no OverflowError
        ("gemm_table_eff", [0.5, 10**400], r"params\.gemm_table_eff must be a number in the float range"),
    ],
)
def test_profile_values_of_the_wrong_kind_are_named(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        load_profile(profile_with(tmp_path, **{field: value}))
