"""The radix prefix cache: sharing by reference count, LRU eviction of unreferenced leaves."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from blendsim.sim.simulation.kvcache import RadixCache


def test_shared_prefix_is_held_once() -> None:
    c = RadixCache(block_size=4)
    # full blocks only, each owned by the segment holding its last token: [0,4) [4,8) | [8,12)
    assert c.lookup([1, 2], [8, 5])[:4] == (0, 0, 2 + 1, 0)
    c.acquire([1, 2], [8, 5], now=0.0)
    assert c.used_blocks == 3 and c.evictable_blocks == 0
    # a second request sharing segment 1 hits its 8 tokens; its 3 own tokens fill no whole block
    # (they are in its private partial block, the engine's)
    assert c.lookup([1, 3], [8, 3])[:4] == (1, 8, 0, 0)
    c.acquire([1, 3], [8, 3], now=1.0)
    assert c.used_blocks == 3 and c.ref(1) == 2
    # a short segment owns a block only if that block's last token is in it
    assert c.span_blocks(6, 9) == 1 and c.span_blocks(9, 11) == 0 and c.span_blocks(0, 8) == 2
    c.check()


def test_release_makes_prefix_evictable_and_lru_order() -> None:
    c = RadixCache(block_size=1)
    c.acquire([1, 2], [10, 5], now=0.0)
    c.acquire([1, 3], [10, 7], now=1.0)
    c.release([1, 2], now=2.0)
    assert c.evictable_blocks == 5  # only segment 2: segment 1 is still referenced
    c.release([1, 3], now=3.0)
    assert c.evictable_blocks == 22
    # the least recently released leaf (2) goes first; the parent only after both children
    assert c.evict(1) == 5 and 2 not in c and 3 in c
    assert c.evict(1) == 7 and 1 in c
    assert c.evict(100) == 10 and len(c) == 0
    c.check()


def test_lookup_counts_pinned_unreferenced_hits() -> None:
    c = RadixCache(block_size=2)
    c.acquire([1], [6], now=0.0)
    c.release([1], now=1.0)
    assert c.lookup([1, 9], [6, 2])[:4] == (1, 6, 1, 3)
    c.acquire([1, 9], [6, 2], now=2.0)
    assert c.evictable_blocks == 0 and c.evict(10) == 0
    c.check()


def test_discard_removes_uncomputed_segments() -> None:
    c = RadixCache(block_size=1)
    c.acquire([1, 2, 3], [4, 4, 4], now=0.0)
    c.discard([1, 2, 3], first=1)
    assert 1 in c and 2 not in c and 3 not in c
    c.release([1], now=1.0)
    assert c.evictable_blocks == 4
    c.check()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans()), min_size=1, max_size=60),
    st.integers(1, 8),
)
def test_random_workload_keeps_invariants(ops: list[tuple[int, int, bool]], block: int) -> None:
    """Random acquire/release/evict sequences keep the tree, refcount and evictable invariants."""
    c = RadixCache(block_size=block)
    held: list[list[int]] = []
    rnd = random.Random(0)
    for t, (a, b, release) in enumerate(ops):
        if release and held:
            c.release(held.pop(rnd.randrange(len(held))), now=float(t))
        else:
            path = [a + 1, 10 * (a + 1) + b]  # segment id fixes its prefix
            c.acquire(path, [a + 3, b + 2], now=float(t))
            held.append(path)
        c.check()
        before = c.used_blocks - c.evictable_blocks
        c.evict(rnd.randrange(1, 10))
        assert c.used_blocks - c.evictable_blocks == before  # eviction never touches pinned KV
        c.check()
