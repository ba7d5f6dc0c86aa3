"""Block-granular prefix hits (vLLM's): whole blocks of the cached prefix, never the last prompt token.

The reference is a brute force over token sequences: each request hits the longest common prefix
with any request admitted before it, capped at ``p - 1`` and rounded down to the block size.
"""

from __future__ import annotations

import numpy as np
import pytest

from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.admission import FcfsAdmission
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.optimum import block_saved_tokens
from blendsim.sim.simulation.replicas import run_replicas
from blendsim.sim.simulation.run import simulate
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)


def unaligned_trace(n: int = 300, seed: int = 3) -> Trace:
    """System prompt (300 tokens), a group prefix (50-400 tokens), then usually a unique question;
    some prompts stop after the group prefix (wholly cached: the last-token rule applies), some
    are only the system prompt. No length is a multiple of 128 by design."""
    rng = np.random.default_rng(seed)
    glen = {g: int(rng.integers(50, 400)) | 1 for g in range(15)}
    reqs = []
    for i in range(n):
        g = int(rng.integers(15))
        u = rng.random()
        if u < 0.05:
            segs, lens = (1,), (300,)
        elif u < 0.25:
            segs, lens = (1, 100 + g), (300, glen[g])
        else:
            segs, lens = (1, 100 + g, 10_000 + i), (300, glen[g], int(rng.integers(1, 300)))
        reqs.append(Request(i, "t", segs, lens, int(rng.integers(1, 80))))
    return Trace.from_requests(reqs)


def brute_force_hits(trace: Trace, order: np.ndarray, block: int) -> dict[int, int]:
    """Per position: block-granular hit against every request earlier in ``order`` (unbounded cache)."""
    prompts = {}
    for i in range(len(trace)):
        ids, lens = trace.segments_of(i)
        prompts[i] = [(int(s), k) for s, n in zip(ids, lens, strict=True) for k in range(int(n))]
    hits: dict[int, int] = {}
    seen: list[list[tuple[int, int]]] = []
    for pos in order.tolist():
        toks = prompts[pos]
        lcp = 0
        for other in seen:
            k = 0
            for a, b in zip(toks, other, strict=False):
                if a != b:
                    break
                k += 1
            lcp = max(lcp, k)
        hits[pos] = min(lcp, len(toks) - 1) // block * block
        seen.append(toks)
    return hits


def fcfs_plan(trace: Trace, order: np.ndarray) -> Plan:
    one = np.zeros(1)
    return Plan(
        "fifo",
        np.asarray(order, dtype=np.int64),
        np.array([0, len(trace)], dtype=np.int64),
        one,
        one,
        one,
        one,
        trace.output_len.copy(),
    )


@pytest.mark.parametrize("block", [128, 16, 1])
def test_hits_are_whole_blocks_and_match_brute_force(block: int) -> None:
    tr = unaligned_trace()
    order = np.random.default_rng(0).permutation(len(tr))
    res = simulate(tr, fcfs_plan(tr, order), LLAMA, A100, EngineConfig(block_size=block))
    adm = res.admission
    assert res.preemptions == 0  # the default cache holds everything: no eviction
    assert np.array_equal(adm["position"], order)
    cached = adm["cached_tokens"]
    assert np.all(cached % block == 0)
    assert np.all(cached < tr.prompt_len[adm["position"]])  # the last prompt token is always computed
    expect = brute_force_hits(tr, order, block)
    assert cached.tolist() == [expect[p] for p in adm["position"].tolist()]
    assert res.sharing * res.total_tokens == pytest.approx(sum(expect.values()))
    assert int(res.steps["prefill_tokens"].sum()) == int(tr.prompt_len.sum()) - sum(expect.values())
    assert res.extra["block_sharing_bound"] * res.total_tokens == pytest.approx(sum(expect.values()))
    assert block_saved_tokens(tr, order[::-1], block) == sum(
        brute_force_hits(tr, order[::-1], block).values()
    )
    if block == 128:
        assert 0 < sum(expect.values()) < tr.saved_tokens()  # coarser than the trace's sharing
        assert res.optimal_sharing == tr.sharing()


def test_tail_blocks_are_freed_and_kv_stays_within_capacity() -> None:
    """Under memory pressure with 128-token blocks (tails recomputed into private blocks, evictions,
    preemptions), KV never exceeds capacity and every private block is returned at the end."""
    tr = unaligned_trace(n=400)
    cfg = EngineConfig(block_size=128, kv_capacity_override=8 * 1024)
    capacity = cfg.kv_capacity_override // cfg.block_size
    engine = Engine(tr, tr.output_len, A100, cfg, capacity)
    run_replicas([(engine, FcfsAdmission(np.arange(len(tr))))])
    used = engine.record.columns(0, cfg.block_size)["steps"]["kv_used_tokens"] // cfg.block_size
    assert used.max() <= capacity
    cache = engine.blocks.cache
    assert engine.stats.preemptions > 0 or cache.evicted_blocks > 0  # memory was actually tight
    assert engine.stats.finished == len(tr) and engine.requests.finished_len == tr.output_len.tolist()
    assert engine.blocks.private_blocks == 0 and engine.blocks.charge_total == 0 and engine.n_running == 0
    cache.check()
    assert cache.evictable_blocks == cache.used_blocks  # nothing referenced any more


def test_kv_is_paged_like_vllm() -> None:
    """One request, p = 300, d = 120, 128-token blocks: after step s it holds the KV of 300 + s - 1
    tokens in ceil(that / 128) blocks (the partial prompt block fills with output)."""
    tr = Trace.from_requests([Request(0, "t", (1, 2), (250, 50), 120)])
    res = simulate(tr, fcfs_plan(tr, np.arange(1)), LLAMA, A100, EngineConfig(block_size=128))
    s = np.arange(1, 121)
    assert res.steps["kv_used_tokens"].tolist() == (-(-(300 + s - 1) // 128) * 128).tolist()


def test_wholly_cached_aligned_prompt_recomputes_its_last_block() -> None:
    """The same 256-token prompt twice: the second hits one block (not its last token), computes
    128 tokens, and holds a private copy of that block next to the cached one."""
    tr = Trace.from_requests([Request(0, "t", (1,), (256,), 300), Request(1, "t", (1,), (256,), 300)])
    res = simulate(tr, fcfs_plan(tr, np.arange(2)), LLAMA, A100, EngineConfig(block_size=128))
    assert res.admission["cached_tokens"].tolist() == [0, 128]
    assert int(res.steps["prefill_tokens"].sum()) == 256 + 128
    # both admitted at step 1; after step 1: 2 cached blocks + 1 copy; then one output block each
    assert res.steps["kv_used_tokens"][0] == 3 * 128
    assert res.steps["kv_used_tokens"][1] == 5 * 128
