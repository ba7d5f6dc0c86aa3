"""Property: whatever number (or non-number) a numeric option of ``trace make``, ``simulate`` or
``sweep`` is given, the command either runs (valid values are drawn at tiny sizes) or refuses it with
exit 2 and a last stderr line that names the option; never a traceback, never an internal error,
never a file left behind by a refusal.

Each example varies one option (the others at their defaults), so the message must be about it.
Valid draws are kept tiny (a 300-request trace, one cell, one policy); invalid ones span the whole
range: zero, negatives, huge and non-finite values, and text that is no number at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_inputs import TRACE_REQUESTS, make_inputs, run_in_process, trace_lengths
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

JUNK = st.sampled_from(["", "x", "1,5", "nan", "inf", "-inf", "1e999", "0x10", "٣", "9" * 30, "-" + "9" * 30])
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True).map(repr)
ANY_INT = st.one_of(st.integers(-(10**25), 10**25), st.integers(-5, 5)).map(str)


def numbers(valid: st.SearchStrategy[object], *invalid: st.SearchStrategy[object]) -> st.SearchStrategy[str]:
    """Option text: a valid value (as text), an invalid one, or junk."""
    return st.one_of(valid.map(str), *(s.map(str) for s in invalid), JUNK)


HUGE = st.integers(10**13, 10**19)  # beyond any host's memory for requests; beyond int64 at the top
NON_POSITIVE = st.integers(-(10**6), 0)

TRACE_MAKE = {
    "--requests": numbers(st.integers(3, TRACE_REQUESTS), NON_POSITIVE, HUGE),
    "--density": numbers(st.floats(0.9, 1.4), ANY_FLOAT),
    "--sharing": numbers(st.floats(0.0, 0.4), ANY_FLOAT),
    "--seed": numbers(st.integers(0, 2**32 - 1), ANY_INT),
}
SIMULATE = {
    "--tp": numbers(st.sampled_from([1, 2, 4, 8]), ANY_INT),
    "--dp": numbers(st.integers(1, 4), NON_POSITIVE, st.integers(TRACE_REQUESTS + 1, 10**19)),
    "--seed": numbers(st.integers(0, 2**32 - 1), ANY_INT),
    "--token-budget": numbers(st.integers(1, 64).map(lambda k: 128 * k), ANY_INT),
    "--max-running": numbers(st.integers(32, 10**9), NON_POSITIVE),
    "--block-size": numbers(st.integers(1, 256), NON_POSITIVE, st.integers(10**6, 10**19)),
    "--expected-fraction": numbers(st.floats(0.05, 1.0), ANY_FLOAT),
    "--kv-capacity-tokens": numbers(st.integers(10**5, 10**12), NON_POSITIVE, st.integers(1, 100)),
}
SWEEP = {
    "--requests": numbers(st.integers(100, TRACE_REQUESTS), NON_POSITIVE, HUGE),
    "--sharing-ratio": numbers(st.floats(0.2, 0.4), ANY_FLOAT),
    "--densities": numbers(
        st.floats(1.0, 1.3).map(lambda d: f"{d:.2f}"), ANY_FLOAT, st.just("0.8:1.4:0.00001")
    ),
    "--dp": numbers(st.just(1), NON_POSITIVE, st.integers(10**6, 10**19)),
    "--tp": numbers(st.just(1), ANY_INT),
    "--seed": numbers(st.integers(0, 2**32 - 1), ANY_INT),
    "--jobs": numbers(st.just(1), NON_POSITIVE),
    "--token-budget": numbers(st.just(8192), ANY_INT),
    "--expected-fraction": numbers(st.floats(0.1, 1.0), ANY_FLOAT),
}
# words a refusal may name its option by, besides the flag itself
ALSO = {
    "--tp": ("tensor parallelism",),
    "--block-size": ("KV",),
    "--kv-capacity-tokens": ("KV",),
    "--density": ("density",),
    "--densities": ("density",),
    "--sharing": ("sharing",),
    "--sharing-ratio": ("sharing",),
    "--requests": ("requests",),
    # a seed draws other lengths: at a few hundred requests the target density may then be out of
    # reach, and the refusal rightly points at the counts (seed 1178: "use more --requests")
    "--seed": ("--requests",),
    "--dp": ("--dp",),
}


def examples(n: int) -> settings:
    return settings(
        max_examples=n, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def check(argv: list[str], flag: str, work: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """Run ``argv`` in the empty folder ``work``; assert the property; return the exit code."""
    outcome = run_in_process(argv, capsys)
    err = outcome.err.strip()
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    assert outcome.code in (0, 2), (argv, outcome.code, err)
    event(f"{flag} exit {outcome.code}")
    if outcome.code == 2:
        last = err.splitlines()[-1]
        assert any(word in last for word in (flag, *ALSO.get(flag, ()))), (argv, last)
        assert list(work.iterdir()) == [], (argv, "a refusal left files behind")
    return outcome.code


@examples(25)
@given(data=st.data())
def test_trace_make_numbers(data: st.DataObject, tmp_path_factory, capsys) -> None:
    work = tmp_path_factory.mktemp("make")
    flag = data.draw(st.sampled_from(sorted(TRACE_MAKE)))
    value = data.draw(TRACE_MAKE[flag])
    base = {"--mix": "burstgpt,mmlu,openvid", "--density": "1.2", "--sharing": "0.3", "--requests": "300"}
    argv = ["trace", "make", *(f"{k}={v}" for k, v in {**base, flag: value}.items()), "-q"]
    argv += ["-o", str(work / "t.parquet")]
    if check(argv, flag, work, capsys) == 0:
        assert len(trace_lengths(str(work / "t.parquet"))) == int({**base, flag: value}["--requests"])


@examples(30)
@given(data=st.data())
def test_simulate_numbers(data: st.DataObject, inputs: dict[str, str], tmp_path_factory, capsys) -> None:
    work = tmp_path_factory.mktemp("simulate")
    flag = data.draw(st.sampled_from(sorted(SIMULATE)))
    value = data.draw(SIMULATE[flag])
    argv = [
        "simulate",
        inputs["t"],
        "--policy",
        "fifo",
        f"{flag}={value}",
        "--json",
        "--out",
        str(work / "o"),
    ]
    if check(argv, flag, work, capsys) == 0:
        assert (work / "o" / "fifo_overlap.json").is_file()


@examples(15)
@given(data=st.data())
def test_sweep_numbers(data: st.DataObject, tmp_path_factory, capsys) -> None:
    work = tmp_path_factory.mktemp("sweep")
    flag = data.draw(st.sampled_from(sorted(SWEEP)))
    value = data.draw(SWEEP[flag])
    base = {"--requests": "200", "--densities": "1.2", "--jobs": "1"}
    options = [f"{k}={v}" for k, v in {**base, flag: value}.items()]
    argv = ["sweep", *options, "--policies", "fifo", "--quiet", "--out", str(work / "o")]
    if check(argv, flag, work, capsys) == 0:
        assert (work / "o" / "results.csv").is_file()
