"""The interference model of the overlapping engine (profiler/interference.py) and the step model's
``shared`` composition: its limits, its bounds and its totals."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.interference import co_run_time, nano_batch_sizes
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.profiler.step_model import StepModel

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g")

times = st.floats(1e-6, 10.0)
fractions = st.floats(0.0, 1.0)


def shared_model(
    bandwidth_share: float = 1.0, compute_share: float = 0.0, sync: float = 0.0, sm_split: float = 0.0
) -> StepModel:
    params = dataclasses.replace(
        A100.params,
        interference="shared",
        overlap_bandwidth_share=bandwidth_share,
        overlap_compute_share=compute_share,
        overlap_sm_split=sm_split,
        overlap_sync_s=sync,
    )
    return StepModel(params, LLAMA, A100.hardware)


def test_co_run_limits() -> None:
    # co_run_time(g, a_compute, a_memory, u_g, bandwidth_share, compute_share, sm_split)
    assert co_run_time(2.0, 0.0, 3.0, 0.0, 1.0, 0.0) == pytest.approx(3.0)  # perfect overlap: the max
    assert co_run_time(2.0, 0.0, 3.0, 1.0, 1.0, 0.0) == pytest.approx(5.0)  # one bandwidth, both bound
    assert co_run_time(2.0, 3.0, 0.0, 0.0, 1.0, 1.0) == pytest.approx(5.0)  # each at half speed: serial
    assert co_run_time(2.0, 0.0, 0.0, 1.0, 1.0, 0.5) == 2.0  # nothing to overlap with
    # constant-factor slowdowns give the old form, max + kappa min, with kappa the compute share
    assert co_run_time(2.0, 3.0, 0.0, 0.0, 1.0, 0.3) == pytest.approx(3.0 + 0.3 * 2.0)
    # a bandwidth twice a side's alone serves both bound sides at full speed
    assert co_run_time(2.0, 0.0, 3.0, 1.0, 2.0, 0.0) == pytest.approx(3.0)
    # two compute-bound sides on split SMs: the SMs' throughput is conserved, so serial
    for split in (0.1, 0.2, 0.5, 0.9):
        assert co_run_time(2.0, 3.0, 0.0, 0.0, 1.0, 0.0, split) == pytest.approx(5.0)
    # a compute-bound GEMM beside memory-bound attention on split SMs: the GEMMs run at 1 - split
    # while attention runs, so ``split`` of the shorter side is exposed (kappa = split)
    assert co_run_time(4.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.2) == pytest.approx(4.0 + 0.2 * 1.0)


@settings(max_examples=300, deadline=None)
@given(times, times, times, fractions, st.floats(1.0, 4.0), fractions)
def test_co_run_lies_between_the_max_and_the_sum(
    g: float, a_c: float, a_m: float, u_g: float, share: float, slow: float
) -> None:
    """On compute units of their own (sm_split 0) the co-run lies between perfect overlap and serial,
    and more contention never helps."""
    t = co_run_time(g, a_c, a_m, u_g, share, slow)
    assert max(g, a_c + a_m) * (1 - 1e-12) <= t <= (g + a_c + a_m) * (1 + 1e-12)
    assert co_run_time(g, a_c, a_m, u_g, share, min(slow + 0.1, 1.0)) >= t * (1 - 1e-12)
    assert co_run_time(g, a_c, a_m, min(u_g + 0.1, 1.0), share, slow) >= t * (1 - 1e-12)


@settings(max_examples=300, deadline=None)
@given(times, times, times, fractions, st.floats(0.01, 0.9))
def test_split_sms_never_beat_the_max(g: float, a_c: float, a_m: float, u_g: float, split: float) -> None:
    t = co_run_time(g, a_c, a_m, u_g, 1.0, 0.0, split)
    assert t >= max(g, a_c + a_m) * (1 - 1e-12)


def test_nano_batches_split_whole_tokens() -> None:
    assert nano_batch_sizes(1025, 2) == [513.0, 512.0]
    assert nano_batch_sizes(1, 2) == [1.0]
    assert sum(nano_batch_sizes(7, 3)) == 7 and len(nano_batch_sizes(7, 3)) == 3


def test_shared_step_limits() -> None:
    """Free bandwidth and no compute sharing: the larger side (GEMMs of the nano-batches, or all
    attention) plus the LM head. Two compute-bound sides at half speed, or two memory-bound sides
    on one bandwidth: the serial time, so the engine runs the step whole (splitting it would only
    add the second nano-batch's weight reads)."""
    shape = BatchShape(
        prefill_tokens=2000, prefill_attn_pairs=4e6, decode_seqs=200, decode_kv_tokens=400_000, prefill_seqs=2
    )
    free = shared_model(4.0, 0.0)
    g = sum(free.gemm_time(k) for k in nano_batch_sizes(2200, 2))
    a = free.prefill_attn_time(4e6, 2000, 2) + free.decode_attn_time(400_000, 2000)
    head = free.lm_head_time(202)
    assert free.split_time(shape) == pytest.approx(max(g, a) + head)
    assert free.splits(shape)
    compute = BatchShape(prefill_tokens=2000, prefill_attn_pairs=4e6, prefill_seqs=2)
    memory = BatchShape(decode_seqs=16, decode_kv_tokens=16 * 4000)  # weight-bound GEMMs, KV reads
    for shape, sm in ((compute, shared_model(1.0, 1.0)), (memory, shared_model(1.0, 0.0))):
        n = shape.prefill_tokens + shape.decode_seqs
        g = sum(sm.gemm_time(k) for k in nano_batch_sizes(n, 2))
        a = sm.prefill_attn_time(shape.prefill_attn_pairs, shape.prefill_tokens, shape.prefill_seqs)
        a += sm.decode_attn_time(shape.decode_kv_tokens, shape.prefill_tokens)
        head = sm.lm_head_time(shape.decode_seqs + shape.prefill_seqs)
        assert sm.split_time(shape) == pytest.approx(g + a + head)
        assert not sm.splits(shape)
        serial = sm.step_time(shape, "serial")
        assert sm.step_time(shape, "overlap").total_s == pytest.approx(serial.total_s)
    # the serial engine is untouched by the interference model
    assert free.step_time(shape, "serial") == StepModel(A100.params, LLAMA, A100.hardware).step_time(
        shape, "serial"
    )
    # a one-token step cannot be split: serial, whatever the model
    one = BatchShape(decode_seqs=1, decode_kv_tokens=500)
    assert free.split_time(one) == pytest.approx(
        free.gemm_time(1) + free.decode_attn_time(500) + free.lm_head_time(1)
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 8000), st.integers(0, 2000), st.integers(1, 8000), st.floats(0.0, 0.9))
def test_an_overlapped_step_is_never_slower_than_serial(
    prefill: int, decodes: int, kv_per_seq: int, split: float
) -> None:
    sm = shared_model(1.0, 0.3, sync=1e-4, sm_split=split)
    shape = BatchShape(
        prefill, prefill * (prefill + 1) / 2, decodes, decodes * kv_per_seq, 1 if prefill else 0
    )
    assert sm.step_time(shape, "overlap").total_s <= sm.step_time(shape, "serial").total_s * (1 + 1e-12)


def test_small_steps_interfere_more_than_large_ones() -> None:
    """Weight-bound GEMMs share the bandwidth with the KV reads; compute-bound ones do not."""
    sm = shared_model(1.0, 0.0)

    def exposed(tokens: int) -> float:  # interference as a fraction of the shorter side
        shape = BatchShape(decode_seqs=tokens, decode_kv_tokens=tokens * 3000)
        g = sum(sm.gemm_time(k) for k in nano_batch_sizes(tokens, 2))
        a = sm.decode_attn_time(tokens * 3000)
        return (sm.split_time(shape) - sm.lm_head_time(tokens) - max(g, a)) / min(g, a)

    assert exposed(64) > 0.5 > exposed(2048)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4000), st.integers(0, 400), st.integers(1, 4000)), min_size=1, max_size=12
    ),
    st.sampled_from([(1.0, 0.1, 0.0), (1.0, 0.0, 0.2), (2.0, 0.3, 0.5), (1.0, 1.0, 0.0)]),
)
def test_the_optimum_bounds_every_run_of_shared_steps(
    steps: list[tuple[int, int, int]], model: tuple[float, float, float]
) -> None:
    """The practical optimum of the totals is never above the sum of the steps (it is a bound), on
    compute units of their own and on split SMs alike."""
    share, compute, split = model
    sm = shared_model(share, compute, sync=1e-4, sm_split=split)
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
