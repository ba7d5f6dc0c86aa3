"""Step-level cost model: exact work counts, regimes, compositions, optimum, tensor parallelism."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape, set_density
from blendsim.profiler.gpus import GPUS, HardwareSpec
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.profiler.profile import builtin_profile, load_profile, resolve_profile
from blendsim.profiler.step_model import StepModel
from blendsim.profiler.step_params import StepParams
from blendsim.profiler.work_counts import (
    allreduce_bytes_per_token,
    decode_kv_bytes,
    layer_gemm_flops,
    layer_weight_bytes,
    lm_head_flops,
    prefill_attn_flops,
)

# 2 layers, hidden 8, 2 heads x 4, 1 KV head x 4, MLP 16, vocab 10
TOY = ModelSpec("toy", 2, 8, 2, 1, 4, 16, 10, params=1000.0)
TOY_HW = HardwareSpec(
    "toy-gpu",
    peak_flops=1000.0,
    mem_bandwidth=100.0,
    mem_capacity=1e6,
    interconnect_bandwidth=50.0,
    source="test",
)


def toy_params(**kw: float) -> StepParams:
    base = dict(
        gemm_eff_max=1.0,
        gemm_n_half=0.0,
        weight_bw_eff=1.0,
        kv_bw_eff=1.0,
        attn_eff=1.0,
        kappa=0.5,
        step_overhead_s=0.0,
        seq_overhead_s=0.0,
    )
    base.update(kw)
    return StepParams(**base)  # type: ignore[arg-type]


def test_exact_counts_on_toy_shapes() -> None:
    # per layer: q 8*8=64, kv 2*8*4=64, o 64, mlp 3*8*16=384 -> 576; 2 layers -> 1152
    assert TOY.layer_params == 1152
    assert layer_gemm_flops(TOY, 3) == 2 * 1152 * 3
    assert lm_head_flops(TOY, 2) == 2 * 80 * 2
    assert prefill_attn_flops(TOY, 5) == 4 * 2 * 8 * 5  # 4 x layers x (heads x head_dim) per pair
    assert TOY.kv_bytes_per_token == 2 * 2 * 1 * 4 * 2  # K,V x layers x kv heads x head_dim x bf16
    assert decode_kv_bytes(TOY, 7) == 32 * 7
    assert layer_weight_bytes(TOY) == 1152 * 2
    assert allreduce_bytes_per_token(TOY, 1) == 0.0
    assert allreduce_bytes_per_token(TOY, 2) == 2 * 2 * 2 * 0.5 * 8 * 2


def test_step_parts_on_toy_shapes() -> None:
    sm = StepModel(toy_params(step_overhead_s=0.5, seq_overhead_s=0.25), TOY, TOY_HW)
    # 100 prefill tokens + 4 decodes: GEMM 2*1152*104 / 1000 = 239.616 s > weights 2304/100
    shape = BatchShape(
        prefill_tokens=100, prefill_attn_pairs=50, decode_seqs=4, decode_kv_tokens=40, prefill_seqs=1
    )
    c, m, o = sm.step_parts(100, 50, 4, 40, 1)
    lm = max(2 * 80 * 5 / 1000, 80 * 2 / 100)
    assert c == pytest.approx(2 * 1152 * 104 / 1000 + lm + 4 * 2 * 8 * 50 / 1000)
    assert m == pytest.approx(32 * 40 / 100)
    assert o == pytest.approx(0.5 + 0.25 * 5)
    st_serial = sm.step_time(shape, "serial")
    st_overlap = sm.step_time(shape, "overlap")
    assert st_serial.total_s == pytest.approx(c + m + o)
    assert st_overlap.total_s == pytest.approx(max(c, m) + 0.5 * min(c, m) + o)
    with pytest.raises(UserError):
        sm.step_time(shape, "pipelined")


def test_gemm_regime_switches_at_ridge_point() -> None:
    profile = resolve_profile("a100-80g", None, get_model("llama-3-8b"))
    sm = profile.steps
    ridge = sm.ridge_tokens()
    assert 1 < ridge < 1000
    flat = sm.gemm_time(1)
    # below the ridge the time is the weight read, flat in tokens
    assert sm.gemm_time(math.floor(ridge)) == pytest.approx(flat)
    # above it the time grows with tokens
    assert sm.gemm_time(math.ceil(ridge) + 1) > flat
    # classical ridge with n_half = 0: F_eff * dtype / (2 BW_eff) tokens
    toy = StepModel(toy_params(weight_bw_eff=0.5), TOY, TOY_HW)
    expected = 1000.0 * 2 / (2 * 100.0 * 0.5)
    assert toy.ridge_tokens() == pytest.approx(expected)
    assert toy.gemm_time(expected - 1) == pytest.approx(toy.gemm_time(1))
    assert toy.gemm_time(expected + 1) > toy.gemm_time(expected)


def test_ridge_of_a_measured_gemm_table_comes_from_the_table() -> None:
    """With a table the curve's parameters no longer set any GEMM time (an engine calibration may move
    them freely), so the ridge is the table's: one-token floor / best per-token time."""

    def with_table(params: StepParams) -> StepParams:
        return dataclasses.replace(
            params, gemm_table_tokens=(1.0, 8.0, 64.0, 512.0), gemm_table_eff=(0.02, 0.15, 0.6, 0.8)
        )

    sm = StepModel(with_table(toy_params()), TOY, TOY_HW)
    assert sm.ridge_tokens() == pytest.approx(0.8 / 0.02)  # t(1) = c / 0.02, best = c / 0.8 per token
    moved = StepModel(
        with_table(toy_params(gemm_eff_max=1.9, weight_bw_eff=1.9, gemm_n_half=64.0)), TOY, TOY_HW
    )
    assert moved.ridge_tokens() == pytest.approx(sm.ridge_tokens())
    assert moved.gemm_time(100.0) == sm.gemm_time(100.0)


def test_mmlu_request_density_on_llama3_8b_a100() -> None:
    rho = set_density(804, 2, get_model("llama-3-8b"), GPUS["a100-80g"], saved_tokens=697)
    assert rho == pytest.approx(54.2, abs=2.0)


def test_builtin_a100_reproduces_paper_table1() -> None:
    """Table 1 (blendserve.md 2.5): per-layer Llama-3-8B decode at seq 1024, within the paper's 6 %."""
    model = get_model("llama-3-8b")
    sm = resolve_profile("a100-80g", None, model).steps
    measured = {512: (1.087e-3, 1.317e-3), 768: (1.537e-3, 1.913e-3), 1024: (2.005e-3, 2.515e-3)}
    for batch, (gemm, attn) in measured.items():
        assert sm.gemm_time(batch) / model.num_layers == pytest.approx(gemm, rel=0.06)
        assert sm.decode_attn_time(batch * 1024) / model.num_layers == pytest.approx(attn, rel=0.06)


shapes = st.builds(
    BatchShape,
    prefill_tokens=st.integers(0, 16384),
    prefill_attn_pairs=st.floats(0, 1e8),
    decode_seqs=st.integers(0, 2048),
    decode_kv_tokens=st.integers(0, 10**7),
    prefill_seqs=st.integers(0, 64),
)


@settings(max_examples=200, deadline=None)
@given(shape=shapes, gpu=st.sampled_from(["a100-80g", "h100-sxm", "h200"]), tp=st.sampled_from([1, 2, 8]))
def test_overlap_never_exceeds_serial(shape: BatchShape, gpu: str, tp: int) -> None:
    profile = resolve_profile(gpu, None, get_model("llama-3-8b"), tp)
    serial = profile.step_time(shape, "serial")
    overlap = profile.step_time(shape, "overlap")
    assert overlap.total_s <= serial.total_s + 1e-15
    assert serial.total_s >= serial.overhead_s >= 0


@settings(max_examples=50, deadline=None)
@given(steps=st.lists(shapes, min_size=1, max_size=8), engine=st.sampled_from(["serial", "overlap"]))
def test_optimal_time_bounds_the_sum_of_steps(steps: list[BatchShape], engine: str) -> None:
    profile = resolve_profile("a100-80g", None, get_model("llama-3-8b"), 2)
    total = BatchShape(
        prefill_tokens=sum(s.prefill_tokens for s in steps),
        prefill_attn_pairs=sum(s.prefill_attn_pairs for s in steps),
        decode_seqs=sum(s.decode_seqs for s in steps),
        decode_kv_tokens=sum(s.decode_kv_tokens for s in steps),
        prefill_seqs=sum(s.prefill_seqs for s in steps),
    )
    lower = profile.optimal_time(total, engine)
    assert lower <= sum(profile.step_time(s, engine).total_s for s in steps) * (1 + 1e-12)


def test_tensor_parallel_scales_work_and_adds_allreduce() -> None:
    model = get_model("llama-3-8b")
    shape = BatchShape(prefill_tokens=2048, decode_seqs=0, prefill_seqs=1)
    one = resolve_profile("a100-80g", None, model, 1).step_time(shape, "serial")
    four = resolve_profile("a100-80g", None, model, 4).step_time(shape, "serial")
    assert four.compute_s == pytest.approx(one.compute_s / 4)
    ar = 2 * 32 * 2 * 3 / 4 * 4096 * 2 * 2048 / 300e9
    assert four.overhead_s - one.overhead_s == pytest.approx(ar)


def test_builtins_are_datasheet_and_model_free() -> None:
    for name in ("a100-80g", "h100-sxm", "h200"):
        p = builtin_profile(name)
        assert p.model is None and not p.provenance.measured and p.provenance.date is None
        assert p.hardware == GPUS[name]
        assert set(p.provenance.sources) >= {"gemm_eff_max", "kv_bw_eff", "attn_eff", "kappa"}


def test_prefill_attention_counts_diagonal_tiles_and_chunks() -> None:
    sm = StepModel(
        toy_params(prefill_attn_extra_pairs=31.5, prefill_chunk_latency_s=0.5, prefill_attn_latency_s=0.25),
        TOY,
        TOY_HW,
    )
    per_pair = 4 * 2 * 8 / 1000
    assert sm.prefill_attn_time(50, 10, 2) == pytest.approx(per_pair * (50 + 31.5 * 10) + 0.25 + 2 * 0.5)
    c, _, _ = sm.step_parts(10, 50, 0, 0, 2)
    assert c == pytest.approx(sm.gemm_time(10) + sm.lm_head_time(2) + sm.prefill_attn_time(50, 10, 2))


def test_gemm_table_interpolates_and_bounds_the_optimum() -> None:
    # efficiency 0.5 at 1 token, 1.0 at 64, 0.8 at 256: falls past its peak, which the curve cannot do
    sm = StepModel(
        toy_params(gemm_table_tokens=(1.0, 64.0, 256.0), gemm_table_eff=(0.5, 1.0, 0.8)), TOY, TOY_HW
    )
    per_token = 2 * 1152 / 1000
    t1, t64, t256 = per_token / 0.5, 64 * per_token, 256 * per_token / 0.8
    assert sm.gemm_time(1) == pytest.approx(t1)
    assert sm.gemm_time(64) == pytest.approx(t64)
    assert sm.gemm_time(160) == pytest.approx(t64 + (t256 - t64) * 96 / 192)
    assert sm.gemm_time(512) == pytest.approx(2 * t256)
    assert sm.gemm_efficiency(512) == pytest.approx(0.8)
    for n in (1, 7, 64, 100, 300, 4000):
        assert (
            sm.optimal_time(BatchShape(prefill_tokens=n), "serial")
            <= sm.step_time(
                BatchShape(prefill_tokens=n, prefill_attn_pairs=1, prefill_seqs=1), "serial"
            ).total_s
        )


def test_profile_without_new_fields_still_loads(tmp_path: Path) -> None:
    data = builtin_profile("a100-80g").to_dict()
    for k in (
        "prefill_attn_extra_pairs",
        "prefill_chunk_latency_s",
        "gemm_table_tokens",
        "gemm_table_eff",
        "decode_prefill_s",
        "decode_prefill_half",
    ):
        data["params"].pop(k, None)
    (tmp_path / "old.json").write_text(json.dumps(data))
    p = load_profile(tmp_path / "old.json")
    assert p.params.gemm_table_tokens == () and p.params.prefill_attn_extra_pairs == 0.0
    assert p.params.decode_prefill_s == 0.0 and p.params.decode_prefill_half == 0.0


def test_bad_gemm_table_is_rejected() -> None:
    assert toy_params(gemm_table_tokens=(1.0, 8.0), gemm_table_eff=(0.5,)).validate()
    assert toy_params(gemm_table_tokens=(8.0, 1.0), gemm_table_eff=(0.5, 0.6)).validate()
    assert toy_params(gemm_table_tokens=(1.0, 8.0), gemm_table_eff=(0.5, 0.0)).validate()


def test_decode_beside_prefill_term_on_toy_numbers() -> None:
    plain = StepModel(toy_params(decode_attn_latency_s=0.5), TOY, TOY_HW)
    sm = StepModel(
        toy_params(decode_attn_latency_s=0.5, decode_prefill_s=3.0, decode_prefill_half=100.0), TOY, TOY_HW
    )
    kv = 32 * 40 / 100 + 0.5  # 40 KV tokens x 32 bytes at 100 B/s, plus the latency
    assert sm.decode_attn_time(40, 100) == pytest.approx(kv + 3.0 * 100 / 200)
    assert sm.decode_attn_time(40) == plain.decode_attn_time(40) == pytest.approx(kv)  # no prefill: no extra
    assert sm.decode_attn_time(0, 500) == 0.0  # no decodes: nothing, however large the prefill
    assert sm.step_parts(500, 50, 0, 0, 1) == plain.step_parts(500, 50, 0, 0, 1)
    # the step's memory part is decode attention with the step's prefill tokens; compute is untouched
    c, m, o = sm.step_parts(100, 50, 4, 40, 1)
    assert m == sm.decode_attn_time(40, 100) and (c, o) == plain.step_parts(100, 50, 4, 40, 1)[::2]
    # monotone in P, saturating below decode_prefill_s
    extra = [sm.decode_attn_time(40, p) - kv for p in (0, 1, 10, 100, 1000, 10**6, 10**9)]
    assert extra[0] == pytest.approx(0.0) and all(a < b for a, b in zip(extra, extra[1:], strict=False))
    assert extra[-1] < 3.0 and extra[-1] == pytest.approx(3.0, rel=1e-6)
    # the neutral default (0) gives bit-identical steps whatever the half point
    neutral = StepModel(toy_params(decode_attn_latency_s=0.5, decode_prefill_half=100.0), TOY, TOY_HW)
    for shape in ((100, 50, 4, 40, 1), (0, 0, 3, 7, 0), (9, 45, 0, 0, 1)):
        assert neutral.step_parts(*shape) == plain.step_parts(*shape)


def test_bad_decode_beside_prefill_is_rejected() -> None:
    assert not toy_params(decode_prefill_s=1.0, decode_prefill_half=10.0).validate()
    assert toy_params(decode_prefill_s=-1.0, decode_prefill_half=10.0).validate()
    assert toy_params(decode_prefill_s=0.0, decode_prefill_half=-1.0).validate()
    assert toy_params(decode_prefill_s=1.0, decode_prefill_half=0.0).validate()  # 0 / 0 at P = 0


@settings(max_examples=200, deadline=None)
@given(shape=shapes, kappa=st.floats(0, 1), extra=st.floats(0, 10), half=st.floats(1e-3, 1e5))
def test_decode_beside_prefill_keeps_the_bounds(
    shape: BatchShape, kappa: float, extra: float, half: float
) -> None:
    sm = StepModel(toy_params(kappa=kappa, decode_prefill_s=extra, decode_prefill_half=half), TOY, TOY_HW)
    serial, overlap = sm.step_time(shape, "serial"), sm.step_time(shape, "overlap")
    assert overlap.total_s <= serial.total_s * (1 + 1e-12)
    for engine in ("serial", "overlap"):
        assert sm.optimal_time(shape, engine) <= sm.step_time(shape, engine).total_s * (1 + 1e-12)
