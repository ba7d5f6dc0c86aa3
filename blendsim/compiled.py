"""The compiled core (setup.py compiles the step loop and the step-cost model with mypyc): which
modules run compiled, and a guard against a stale build.

In a source checkout (an editable install) a compiled module sits beside its ``.py`` file and Python
imports it instead, so an edit to the source would silently not run until the next build. Each
package with compiled modules calls :func:`check_fresh` on import; in a source checkout it refuses
to import a package whose source is newer than its compiled build. A regular install (a wheel) is
never stale: its files come from one build.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

from blendsim.errors import InstallError

REBUILD = (
    "rebuild it with `pip install -e .` in the checkout, or run the pure-Python package with "
    "`BLENDSIM_COMPILE=0 pip install -e .` (which also removes the compiled files)"
)


def source_root(package_dir: Path) -> Path | None:
    """The checkout holding ``package_dir`` (the first folder above it without an ``__init__.py``)
    when that folder has the project's ``setup.py``; None in an installed package."""
    root = package_dir
    while (root / "__init__.py").exists():
        root = root.parent
    return root if (root / "setup.py").exists() else None


def stale_sources(package_dir: Path) -> list[Path]:
    """The ``.py`` files in ``package_dir`` modified after their compiled module was built."""
    stale = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for ext in package_dir.glob(f"*{suffix}"):
            source = ext.with_name(ext.name[: -len(suffix)] + ".py")
            if source.exists() and source.stat().st_mtime > ext.stat().st_mtime:
                stale.append(source)
    return sorted(stale)


def check_fresh(package_file: str) -> None:
    """Refuse (InstallError, exit 2: one line with the remedy) to import a package whose compiled
    modules are older than their sources, in a source checkout; ``package_file`` is the package's
    ``__file__``."""
    package_dir = Path(package_file).parent
    root = source_root(package_dir)
    if root is None:
        return
    stale = stale_sources(package_dir)
    if stale:
        names = ", ".join(str(p.relative_to(root)) for p in stale)
        raise InstallError(f"blendsim's compiled core is older than {names}: {REBUILD}", short="stale build")


def is_compiled(module: str) -> bool:
    """Whether the imported ``module`` runs from a compiled extension rather than its source."""
    path = getattr(sys.modules[module], "__file__", None) or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
