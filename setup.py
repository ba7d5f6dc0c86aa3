"""Build the compiled core: the simulator's step loop and the step-cost model, compiled by mypyc.

Everything else about the package is declared in pyproject.toml. The modules in :data:`COMPILED` are
plain, fully typed Python; mypyc turns them into C extensions that run the simulation about twice as
fast (docs/simulator.md, "Speed"), with the same results (tests/test_golden.py). The Python sources
stay in the package, so the build is optional twice over:

- ``BLENDSIM_COMPILE=0 pip install ...`` skips it (for editing the simulator in an editable install:
  a compiled module shadows its source, and ``blendsim`` refuses to start on a stale build, see
  :mod:`blendsim.compiled`);
- without a C compiler the extensions fail to build and pip installs the pure-Python package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
# (folder, modules): the step loop (engine parts, admission rules, KV cache) and the step-cost model
COMPILED = {
    "sim/simulation": [
        "admission",
        "blend_admission",
        "blocks",
        "cursors",
        "decode",
        "engine",
        "kvcache",
        "lpm_admission",
        "prefill",
        "projected_peak",
        "record",
        "requests",
        "roles",
        "sides",
        "stats",
        "work_left",
    ],
    "profiler": ["cost", "interference", "step_model", "step_params", "work_counts"],
}
# The installed layout maps top-level folders under one import name (pyproject's package-dir); mypyc
# names a module after its path, so it compiles from a tree of links with the installed layout.
LINKED = ("traces", "profiler", "sim", "executor", "experiments")
# pip runs setup.py once per build hook; these only write metadata, which compiling does not change
METADATA_COMMANDS = ("egg_info", "dist_info")


def compiled_modules() -> list[str]:
    """The paths of :data:`COMPILED`'s modules, relative to the root, without ``.py``."""
    return [f"{folder}/{m}" for folder, ms in COMPILED.items() for m in ms]


def link_tree(tree: Path) -> None:
    """``tree/blendsim`` with the installed package's layout, made of links to the sources."""
    package = tree / "blendsim"
    package.mkdir(parents=True, exist_ok=True)
    for source in [*(ROOT / "blendsim").glob("*.py"), *(ROOT / part for part in LINKED)]:
        link = package / source.name
        if not link.is_symlink():
            link.symlink_to(source)


def remove_compiled() -> None:
    """Delete compiled modules an earlier editable build left beside the sources (they would shadow
    the sources)."""
    for name in [*compiled_modules(), "blendsim/_core__mypyc"]:
        for built in ROOT.glob(f"{name}.*.so"):
            built.unlink()


def compiled_extensions() -> list[Extension]:
    """The mypyc extensions of :data:`COMPILED`; none with ``BLENDSIM_COMPILE=0`` or for a command
    that only writes metadata."""
    if os.environ.get("BLENDSIM_COMPILE", "1") == "0":
        remove_compiled()
        return []
    if sys.argv[1:2] and sys.argv[1] in METADATA_COMMANDS:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without its declared requirements (--no-build-isolation)
        print("blendsim: mypy is not installed, so the simulator's core is not compiled", file=sys.stderr)
        return []

    tree = ROOT / "build" / "mypyc-src"
    link_tree(tree)
    config = tree / "mypy.ini"  # the compile's own settings: it type-checks, the CI's mypy is stricter
    config.write_text("[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n")
    paths = [str(tree / "blendsim" / f"{module}.py") for module in compiled_modules()]
    cwd = Path.cwd()
    os.chdir(tree)  # mypy finds the package from here
    try:
        extensions = mypycify(
            ["--config-file", str(config), *paths],
            group_name="blendsim._core",
            target_dir=str(ROOT / "build" / "mypyc-c"),
        )
    finally:
        os.chdir(cwd)
    for ext in extensions:
        ext.optional = True  # no compiler: the pure-Python package still installs
    return extensions


setup(ext_modules=compiled_extensions())
