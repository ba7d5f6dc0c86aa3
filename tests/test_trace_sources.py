"""Every source's statistics against the paper's Table 4 (Llama-3-8B, A100, datasheet peaks)."""

from __future__ import annotations

import numpy as np
import pytest

from blendsim.profiler.cost import set_density
from blendsim.profiler.gpus import get_gpu
from blendsim.profiler.models import get_model
from blendsim.traces.assemble import assemble
from blendsim.traces.sources import SOURCES, get_source
from blendsim.traces.sources.mmlu import SUBJECTS

LLAMA3, A100 = get_model("llama-3-8b"), get_gpu("a100-80g")
# requests per source for the Table 4 check: videos and reasoning traces are few and long
SIZES = {"openvid": 4000, "limo": 4000}
# histogram x-ranges of blendserve.md §6.1 (OpenVid's output after the 16K rescaling: 150K x 16384/43726)
MAX_PROMPT = {"burstgpt": 500, "azure": 6000, "wildchat": 3000, "limo": 20000}
MAX_OUTPUT = {
    "burstgpt": 500,
    "azure": 6000,
    "wildchat": 3000,
    "limo": 20000,
    "openvid": 150_000 * 16384 / 43726 + 256,
    "mmlu": 3,
}


def alone(name: str, seed: int = 0):
    block = get_source(name).generate(SIZES.get(name, 20_000), seed)
    trace = assemble([block], [name], "batched", np.random.default_rng(0))
    trace.validate()
    return trace


@pytest.mark.parametrize("name", sorted(SOURCES))
@pytest.mark.parametrize("seed", [0, 1])
def test_density_and_sharing_match_table4(name: str, seed: int) -> None:
    src = get_source(name)
    t = alone(name, seed)
    density = set_density(t.prompt_len, t.output_len, LLAMA3, A100, t.saved_tokens())
    assert density == pytest.approx(src.paper_density, rel=0.10)
    if src.paper_sharing is not None:
        assert t.sharing() == pytest.approx(src.paper_sharing, abs=0.02)
    else:
        assert t.sharing() < 0.02  # only the system prompt is shared


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_lengths_stay_inside_the_histogram_ranges(name: str) -> None:
    t = alone(name)
    assert t.prompt_len.min() >= 2 and t.output_len.min() >= 1
    if name in MAX_PROMPT:
        assert t.prompt_len.max() <= MAX_PROMPT[name]
    if name in MAX_OUTPUT:
        assert t.output_len.max() <= MAX_OUTPUT[name]


@pytest.mark.parametrize(
    ("name", "p", "d"),
    [
        ("burstgpt", 244, 27),
        ("azure", 2508, 23),
        ("wildchat", 496, 256),
        ("mmlu", 804, 2),
        ("openvid", 121, 16384),
        ("limo", 109, 7617),
    ],
)
def test_means_follow_the_paper(name: str, p: float, d: float) -> None:
    t = alone(name)
    assert t.prompt_len.mean() == pytest.approx(p, rel=0.05)
    assert t.output_len.mean() == pytest.approx(d, rel=0.05)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_request_starts_with_the_source_system_prompt(name: str) -> None:
    block = get_source(name).generate(500, 3)
    assert np.all(block.seg_ids[block.seg_offsets[:-1]] == 0)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_generation_is_prefix_stable(name: str) -> None:
    small, big = get_source(name).generate(300, 5), get_source(name).generate(900, 5)
    head = big.head(300)
    for a, b in (
        (small.output_len, head.output_len),
        (small.seg_offsets, head.seg_offsets),
        (small.seg_ids, head.seg_ids),
        (small.seg_lens, head.seg_lens),
    ):
        assert np.array_equal(a, b)


def test_mmlu_structure() -> None:
    block = get_source("mmlu").generate(20_000, 0)
    assert np.all(np.diff(block.seg_offsets) == 3)
    subjects = block.seg_ids[1::3]
    assert len(np.unique(subjects)) == SUBJECTS
    assert len(np.unique(block.seg_ids[2::3])) == len(block)  # unique questions
    assert set(np.unique(block.output_len)) == {1, 2, 3}
    shared = block.seg_lens[0::3] + block.seg_lens[1::3]
    assert shared.mean() == pytest.approx(695, rel=0.05)


def test_mmlu_sharing_grows_with_requests_per_subject() -> None:
    shares = []
    for n in (100, 1000, 20_000):
        t = assemble([get_source("mmlu").generate(n, 0)], ["mmlu"], "batched", np.random.default_rng(0))
        shares.append(t.sharing())
    assert shares[0] < shares[1] < shares[2]


def test_wildchat_later_turns_extend_earlier_turns() -> None:
    block = get_source("wildchat").generate(5000, 0)
    t = assemble([block], ["wildchat"], "batched", np.random.default_rng(0))
    t.validate()  # the segment invariant holds across turns
    counts = np.diff(block.seg_offsets)
    multi = np.flatnonzero(counts > 2)
    assert len(multi) > 0.2 * len(block)
    for i in multi[:200]:
        ids = block.seg_ids[block.seg_offsets[i] : block.seg_offsets[i + 1]]
        prev = block.seg_ids[block.seg_offsets[i - 1] : block.seg_offsets[i]]
        # the previous request is the previous turn: its prompt, then its answer, then a new message
        assert np.array_equal(ids[: len(prev)], prev)
        assert block.seg_lens[block.seg_offsets[i] + len(prev)] == block.output_len[i - 1]
        assert len(ids) == len(prev) + 2


def test_openvid_outputs_are_whole_frames() -> None:
    block = get_source("openvid").generate(2000, 0)
    assert np.all(block.output_len % 256 == 0)
    assert block.output_len.mean() == pytest.approx(16384, rel=0.05)
