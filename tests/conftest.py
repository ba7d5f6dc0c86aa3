"""Shared test helpers: the repository root and the real traces beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TRACES = REPO_ROOT.parent / "shared" / "traces"


@pytest.fixture
def shared_traces() -> Path:
    """The real trace files in ../shared/traces/; tests that need them skip if absent."""
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"real traces not found at {SHARED_TRACES}")
    return SHARED_TRACES
