"""Golden results: the simulator's outputs on fixed presets are exactly what they were (tests/golden.py)."""

from __future__ import annotations

import json

import golden
import pytest


@pytest.fixture(scope="module")
def current() -> dict:
    return golden.run_cases()


def test_fixture_covers_every_case() -> None:
    expected = json.loads(golden.FIXTURE.read_text())
    assert sorted(expected) == sorted(golden.case_key(c) for c in golden.cases())


def test_every_case_matches_the_fixture(current: dict) -> None:
    expected = json.loads(golden.FIXTURE.read_text())
    problems = [
        m for key in sorted(expected) for m in golden.mismatches(expected[key], current.get(key), key)
    ]
    assert not problems, f"{len(problems)} golden mismatches (first 20):\n" + "\n".join(problems[:20])


def test_mismatches_catches_a_moved_float_and_an_integer() -> None:
    base = {"a": 1.0, "b": 3, "c": {"sha256": "x"}}
    assert golden.mismatches(base, {"a": 1.0 + 1e-12, "b": 3, "c": {"sha256": "x"}, "new": 1}) == []
    assert len(golden.mismatches(base, {"a": 1.0 + 1e-6, "b": 4, "c": {"sha256": "y"}})) == 3
    assert golden.mismatches(base, {"b": 3, "c": {"sha256": "x"}}) == ["/a: missing"]
