"""The interference model of the overlapping engine (profiler/interference.py) and the step model's
``shared`` composition: its limits, its bounds and its totals."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.interference import co_run_time, nano_batch_sizes
from blendsim.profiler.profile import builtin_profile
from blendsim.profiler.specs import MODELS
from blendsim.profiler.step_model import StepModel

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g")

times = st.floats(1e-6, 10.0)
fractions = st.floats(0.0, 1.0)


def shared_model(bandwidth_share: float = 1.0, compute_share: float = 0.0, sync: float = 0.0) -> StepModel:
    params = dataclasses.replace(
        A100.params,
        interference="shared",
        overlap_bandwidth_share=bandwidth_share,
        overlap_compute_share=compute_share,
        overlap_sync_s=sync,
    )
    return StepModel(params, LLAMA, A100.hardware)


def test_co_run_limits() -> None:
    assert co_run_time(2.0, 3.0, 0.0, 0.0, 1.0, 0.0) == pytest.approx(3.0)  # perfect overlap: the max
    assert co_run_time(2.0, 3.0, 1.0, 1.0, 1.0, 0.0) == pytest.approx(
        5.0
    )  # one bandwidth, both bound: serial
    assert co_run_time(2.0, 3.0, 0.0, 0.0, 1.0, 1.0) == pytest.approx(5.0)  # each at half speed: serial
    assert co_run_time(2.0, 0.0, 1.0, 1.0, 1.0, 0.5) == 2.0  # nothing to overlap with
    # constant-factor slowdowns give the old form, max + kappa min, with kappa the compute share
    assert co_run_time(2.0, 3.0, 0.0, 0.0, 1.0, 0.3) == pytest.approx(3.0 + 0.3 * 2.0)
    # a bandwidth twice a side's alone serves both bound sides at full speed
    assert co_run_time(2.0, 3.0, 1.0, 1.0, 2.0, 0.0) == pytest.approx(3.0)


@settings(max_examples=300, deadline=None)
@given(times, times, fractions, fractions, st.floats(1.0, 4.0), fractions)
def test_co_run_lies_between_the_max_and_the_sum(
    g: float, a: float, u_g: float, u_a: float, share: float, slow: float
) -> None:
    t = co_run_time(g, a, u_g, u_a, share, slow)
    assert max(g, a) * (1 - 1e-12) <= t <= (g + a) * (1 + 1e-12)
    # more contention never helps
    assert co_run_time(g, a, u_g, u_a, share, min(slow + 0.1, 1.0)) >= t * (1 - 1e-12)
    assert co_run_time(g, a, min(u_g + 0.1, 1.0), u_a, share, slow) >= t * (1 - 1e-12)


def test_nano_batches_split_whole_tokens() -> None:
    assert nano_batch_sizes(1025, 2) == [513.0, 512.0]
    assert nano_batch_sizes(1, 2) == [1.0]
    assert sum(nano_batch_sizes(7, 3)) == 7 and len(nano_batch_sizes(7, 3)) == 3


def test_shared_step_limits() -> None:
    """Free bandwidth and no compute sharing: the larger side (GEMMs of the nano-batches, or all
    attention) plus the LM head; both bound on one bandwidth with half-speed compute: serial."""
    shape = BatchShape(
        prefill_tokens=2000, prefill_attn_pairs=4e6, decode_seqs=200, decode_kv_tokens=400_000, prefill_seqs=2
    )
    free, bound = shared_model(4.0, 0.0), shared_model(1.0, 1.0)
    g = sum(free.gemm_time(k) for k in nano_batch_sizes(2200, 2))
    a = free.prefill_attn_time(4e6, 2000, 2) + free.decode_attn_time(400_000, 2000)
    head = free.lm_head_time(202)
    assert free.overlapped(shape) == pytest.approx(max(g, a) + head)
    assert bound.overlapped(shape) == pytest.approx(g + a + head)
    # the serial engine is untouched by the interference model
    assert free.step_time(shape, "serial") == StepModel(A100.params, LLAMA, A100.hardware).step_time(
        shape, "serial"
    )
    # a one-token step cannot be split: serial, whatever the model
    one = BatchShape(decode_seqs=1, decode_kv_tokens=500)
    assert free.overlapped(one) == pytest.approx(
        free.gemm_time(1) + free.decode_attn_time(500) + free.lm_head_time(1)
    )


def test_small_steps_interfere_more_than_large_ones() -> None:
    """Weight-bound GEMMs share the bandwidth with the KV reads; compute-bound ones do not."""
    sm = shared_model(1.0, 0.0)

    def exposed(tokens: int) -> float:  # interference as a fraction of the shorter side
        shape = BatchShape(decode_seqs=tokens, decode_kv_tokens=tokens * 3000)
        g = sum(sm.gemm_time(k) for k in nano_batch_sizes(tokens, 2))
        a = sm.decode_attn_time(tokens * 3000)
        return (sm.overlapped(shape) - sm.lm_head_time(tokens) - max(g, a)) / min(g, a)

    assert exposed(64) > 0.5 > exposed(2048)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4000), st.integers(0, 400), st.integers(1, 4000)), min_size=1, max_size=12
    )
)
def test_the_optimum_bounds_every_run_of_shared_steps(steps: list[tuple[int, int, int]]) -> None:
    """The practical optimum of the totals is never above the sum of the steps (it is a bound)."""
    sm = shared_model(1.0, 0.1, sync=1e-4)
    shapes = []
    for prefill, decodes, kv_per_seq in steps:
        chunks = 1 if prefill else 0
        pairs = prefill * (prefill + 1) / 2
        shapes.append(BatchShape(prefill, pairs, decodes, decodes * kv_per_seq, chunks))
    total = BatchShape(*(sum(getattr(s, f) for s in shapes) for f in BatchShape._fields))
    assert sm.optimal_time(total, "overlap") <= sum(sm.step_time(s, "overlap").total_s for s in shapes) * (
        1 + 1e-9
    )


def test_the_fit_recovers_a_known_interference_model() -> None:
    """Overlapped 'measurements' made by a known shared model (and 0.2 % noise) give that model back.
    The compute share moves these steps' times by only 2-3 %, so noise blurs it first."""
    import numpy as np

    from blendsim.profiler.overlap_fit import (
        FULL_OVERLAP,
        fit_interference,
        overlap_steps,
        predicted,
        with_interference,
    )

    shapes = overlap_steps(FULL_OVERLAP)
    truth = (1.6, 0.15, 0.002)
    measured = predicted(with_interference(A100.params, truth), LLAMA, A100.hardware, shapes)
    noise = 1 + 0.002 * np.random.default_rng(0).standard_normal(len(shapes))
    fitted = fit_interference(
        list(zip(shapes, measured * noise, strict=True)), A100.params, LLAMA, A100.hardware
    )
    assert fitted.interference == "shared"
    assert fitted.overlap_bandwidth_share == pytest.approx(1.6, abs=0.1)
    assert fitted.overlap_compute_share == pytest.approx(0.15, abs=0.05)
    assert fitted.overlap_sync_s == pytest.approx(0.002, abs=0.001)
