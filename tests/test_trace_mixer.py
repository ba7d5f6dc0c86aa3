"""The mixer: presets, feasible targets (hypothesis), arrival order, determinism, recomputation from
columns."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blendsim.errors import UserError
from blendsim.traces.io import read_trace, write_trace
from blendsim.traces.mixer import PRESETS, make_preset, make_trace
from blendsim.traces.stats import trace_stats

# llama-3-8b on a100-80g: 2P/F and kv_bytes/BW at datasheet peaks (profiler/models.py, gpus.py);
# recomputed here by hand
GEMM_S_PER_TOKEN = 2 * 8.03e9 / 312e12
KV_S_PER_TOKEN2 = 131072 / 2.039e12


def density_and_sharing_from_columns(path) -> tuple[float, float]:
    """Recompute both metrics with pyarrow/pandas from the file's columns only."""
    df = pq.read_table(path).to_pandas()
    p, d = df["prompt_len"].to_numpy(float), df["output_len"].to_numpy(float)
    seg = df[["segments", "segment_lens"]].explode(["segments", "segment_lens"])
    saved = (
        seg["segment_lens"].astype(float).sum()
        - seg.drop_duplicates("segments")["segment_lens"].astype(float).sum()
    )
    tokens = p.sum() + d.sum()
    density = (tokens - saved) * GEMM_S_PER_TOKEN / (np.sum(p * d + d * d / 2) * KV_S_PER_TOKEN2)
    return density, saved / tokens


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_hit_table2_recomputable_from_columns(name: str, tmp_path) -> None:
    preset = PRESETS[name]
    trace = make_preset(name)
    assert len(trace) == 40_000
    assert trace.metadata["counts"]["openvid"] >= 1
    path = tmp_path / f"{name}.parquet"
    write_trace(trace, path)
    density, sharing = density_and_sharing_from_columns(path)
    assert density == pytest.approx(preset.density, rel=0.03)
    assert sharing == pytest.approx(preset.sharing, abs=0.02)
    stats = trace_stats(read_trace(path), "llama-3-8b", "a100-80g")["total"]
    assert stats["density"] == pytest.approx(density, rel=1e-9)
    assert stats["sharing"] == pytest.approx(sharing, abs=1e-12)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(density=st.floats(0.8, 3.0), sharing=st.floats(0.05, 0.45), seed=st.integers(0, 1000))
def test_feasible_targets_are_hit(density: float, sharing: float, seed: int) -> None:
    trace = make_trace(["burstgpt", "mmlu", "openvid"], density, sharing, 20_000, seed=seed)
    trace.validate()
    stats = trace_stats(trace)["total"]
    assert stats["requests"] == 20_000
    assert stats["density"] == pytest.approx(density, rel=0.03)
    assert stats["sharing"] == pytest.approx(sharing, abs=0.02)


@pytest.mark.parametrize(
    ("mix", "density", "sharing"),
    [
        (["azure", "mmlu", "openvid"], 1.0, 0.3),
        (["sharegpt", "mmlu", "openvid"], 1.0, 0.25),
        (["wildchat", "mmlu", "openvid"], 1.2, 0.3),
        (["burstgpt", "openvid"], 1.2, 0.017),
        (["burstgpt", "mmlu", "limo", "wildchat"], 2.0, 0.3),
    ],
)
def test_other_mixes(mix: list[str], density: float, sharing: float) -> None:
    trace = make_trace(mix, density, sharing, 20_000, seed=1)
    trace.validate()
    stats = trace_stats(trace)
    assert stats["total"]["density"] == pytest.approx(density, rel=0.03)
    assert stats["total"]["sharing"] == pytest.approx(sharing, abs=0.02)
    assert set(stats["sources"]) == set(mix)


def test_batched_arrival_keeps_mix_order_and_shuffles_within() -> None:
    trace = make_trace(["mmlu", "burstgpt", "openvid"], 1.4, 0.35, 10_000)
    codes = trace.source_codes
    assert trace.sources == ["mmlu", "burstgpt", "openvid"]
    assert np.all(np.diff(codes) >= 0)  # one batch per source, in --mix order
    assert np.array_equal(trace.request_id, np.arange(len(trace)))
    mmlu_subjects = trace.seg_ids[trace.seg_offsets[:-1][codes == 0] + 1]
    assert not np.all(np.diff(mmlu_subjects) >= 0)  # shuffled, not grouped by subject


def test_interleaved_arrival_mixes_sources() -> None:
    trace = make_trace(["burstgpt", "mmlu", "openvid"], 1.4, 0.35, 10_000, arrival="interleaved")
    first = trace.source_codes[:2000]
    assert len(np.unique(first)) >= 2
    assert np.array_equal(trace.request_id, np.arange(len(trace)))


def test_segment_ids_are_unique_across_sources() -> None:
    trace = make_preset("trace1", requests=5000)
    trace.validate()
    for a in range(len(trace.sources)):
        for b in range(a + 1, len(trace.sources)):
            ids_a = trace.seg_ids[np.repeat(trace.source_codes == a, np.diff(trace.seg_offsets))]
            ids_b = trace.seg_ids[np.repeat(trace.source_codes == b, np.diff(trace.seg_offsets))]
            assert not np.intersect1d(ids_a, ids_b).size


def test_same_seed_same_bytes_other_seed_other_trace(tmp_path) -> None:
    paths = [tmp_path / f"{i}.parquet" for i in range(3)]
    for path, seed in zip(paths, (7, 7, 8), strict=True):
        write_trace(make_preset("trace3", requests=8000, seed=seed), path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_infeasible_targets_name_the_feasible_range() -> None:
    with pytest.raises(UserError, match=r"feasible density at that sharing is"):
        make_trace(["burstgpt", "mmlu", "openvid"], 40.0, 0.35, 10_000)
    with pytest.raises(UserError, match=r"feasible sharing is 0\.0"):
        make_trace(["burstgpt", "openvid"], 1.0, 0.5, 10_000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"requests": 0}, "positive"),
        ({"requests": -5}, "positive"),
        ({"mix": ["burstgpt", "nope"]}, "unknown source"),
        ({"model": "gpt-9"}, "unknown model"),
        ({"gpu": "tpu"}, "unknown GPU"),
        ({"arrival": "random"}, "arrival"),
        ({"density": -1.0}, "density"),
        ({"sharing": 1.5}, "sharing"),
        ({"mix": ["mmlu", "mmlu"]}, "twice"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {
        "mix": ["burstgpt", "mmlu", "openvid"],
        "density": 1.4,
        "sharing": 0.35,
        "requests": 1000,
        **kwargs,
    }
    with pytest.raises(UserError, match=match):
        make_trace(**args)
