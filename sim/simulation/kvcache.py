"""A radix prefix cache over prompt segments, with reference counts and LRU eviction.

The cache is keyed by segment id. By the trace's segment invariant a segment id fixes its whole
prefix, so a segment id *is* a radix-tree node: its parent is the segment before it. A request's
prompt is a root-to-leaf path of segments.

KV is counted in blocks of ``block_size`` tokens, as a paged engine with prefix caching lays them
out: a prompt's *full* blocks are shared, content-addressed; block ``j`` (tokens ``[j b, (j+1) b)``)
belongs to the segment holding its last token, so a segment spanning prompt tokens ``(S, E]``
owns ``E // b - S // b`` blocks (possibly 0: a short segment inside one block). A cached path
ending at token ``E`` thus holds exactly the blocks of ``[0, E // b * b)``. The prompt's last,
partial block (with the output) is the request's own, not the cache's (:mod:`.engine`).

Invariants (checked by the tests):
* a cached node's parent is cached (the cache is a tree, so lookups are prefix matches);
* ``ref[seg]`` is the number of running requests whose prompt path contains ``seg``; a node with
  ``ref == 0`` has only ``ref == 0`` descendants;
* ``evictable_blocks`` is the sum of the blocks of nodes with ``ref == 0``; every such node can be
  evicted (leaves first), so ``used_blocks - evictable_blocks`` is the KV pinned by running requests;
* eviction removes unreferenced leaves in least-recently-used order (a node's last use is the last
  acquire or release of a path through it).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


class RadixCache:
    """Prompt-segment KV held once per segment, shared by reference count."""

    def __init__(self, block_size: int = 16) -> None:
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        self.block_size = block_size
        self._parent: dict[int, int] = {}
        self._blocks: dict[int, int] = {}
        self._ref: dict[int, int] = {}
        self._children: dict[int, int] = {}
        self._last_use: dict[int, float] = {}
        self._lru: list[tuple[float, int, int]] = []  # (last use, tie-break, seg): candidate leaves
        self._tick = 0
        self.used_blocks = 0
        self.evictable_blocks = 0
        self.evicted_blocks = 0  # total blocks evicted so far (a statistic)

    # ------------------------------------------------------------------ queries
    def span_blocks(self, start: int, end: int) -> int:
        """Full blocks whose last token lies in prompt tokens ``(start, end]``: a segment's blocks."""
        return end // self.block_size - start // self.block_size

    def __contains__(self, seg: int) -> bool:
        return seg in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def ref(self, seg: int) -> int:
        return self._ref.get(seg, 0)

    def lookup(self, segs: Sequence[int], lens: Sequence[int]) -> tuple[int, int, int, int]:
        """Prefix match of a prompt path without changing anything.

        Returns ``(hit_segments, hit_tokens, new_blocks, pinned_evictable_blocks)``: the number of
        leading segments already cached and their tokens, the blocks the missing segments need, and
        the blocks of hit segments that are unreferenced now (acquiring the path pins them, so they
        stop being evictable). The hit is token-granular; the engine rounds it to whole blocks.
        """
        hit = hit_tokens = pinned = 0
        blocks = self._blocks
        ref = self._ref
        for seg, ln in zip(segs, lens, strict=True):
            b = blocks.get(seg)
            if b is None:
                break
            hit += 1
            hit_tokens += ln
            if ref[seg] == 0:
                pinned += b
        prompt = hit_tokens + sum(lens[hit:])
        return hit, hit_tokens, self.span_blocks(hit_tokens, prompt), pinned

    # ------------------------------------------------------------------ changes
    def acquire(self, segs: Sequence[int], lens: Sequence[int], now: float) -> None:
        """Reference every segment of the path, inserting the missing ones (the caller has made room:
        ``free_blocks() >= new_blocks`` from :meth:`lookup`)."""
        parent = -1
        end = 0
        for seg, ln in zip(segs, lens, strict=True):
            end += ln
            b = self._blocks.get(seg)
            if b is None:
                b = self.span_blocks(end - ln, end)
                self._blocks[seg] = b
                self._parent[seg] = parent
                self._ref[seg] = 0
                self._children[seg] = 0
                if parent >= 0:
                    self._children[parent] += 1
                self.used_blocks += b
                self.evictable_blocks += b  # ref is 0 for a moment; the increment below pins it
            if self._ref[seg] == 0:
                self.evictable_blocks -= b
            self._ref[seg] += 1
            self._last_use[seg] = now
            parent = seg

    def release(self, segs: Sequence[int], now: float) -> None:
        """Drop one reference along the path; nodes that become unreferenced leaves join the LRU."""
        for seg in segs:
            r = self._ref[seg] - 1
            self._ref[seg] = r
            self._last_use[seg] = now
            if r == 0:
                self.evictable_blocks += self._blocks[seg]
        leaf = segs[-1]
        if self._ref[leaf] == 0 and self._children[leaf] == 0:
            self._push(leaf)

    def discard(self, segs: Sequence[int], first: int) -> None:
        """Remove the path's segments from index ``first`` on, which the caller inserted and never
        computed (a request preempted before its prefill finished). They must be referenced only by
        that request and have no other cached children."""
        for seg in reversed(segs[first:]):
            if seg not in self._blocks:
                continue
            assert self._ref[seg] == 1 and self._children[seg] == 0, "discarding a shared segment"
            self._remove(seg, was_ref=True)
        # the caller still holds references on segs[:first]; release() handles them

    def evict(self, blocks_needed: int) -> int:
        """Evict unreferenced leaves, least recently used first, until ``blocks_needed`` are freed
        or nothing is evictable. Returns the blocks freed."""
        freed = 0
        lru = self._lru
        while freed < blocks_needed and lru:
            last, _, seg = heapq.heappop(lru)
            if (
                seg not in self._blocks
                or self._ref[seg]
                or self._children[seg]
                or self._last_use[seg] != last
            ):
                continue  # stale entry
            freed += self._blocks[seg]
            self.evicted_blocks += self._blocks[seg]
            parent = self._remove(seg, was_ref=False)
            if parent >= 0 and self._ref[parent] == 0 and self._children[parent] == 0:
                self._push(parent)
        return freed

    # ------------------------------------------------------------------ internals
    def _push(self, seg: int) -> None:
        self._tick += 1
        heapq.heappush(self._lru, (self._last_use[seg], self._tick, seg))

    def _remove(self, seg: int, was_ref: bool) -> int:
        b = self._blocks.pop(seg)
        parent = self._parent.pop(seg)
        self._ref.pop(seg)
        self._children.pop(seg)
        self._last_use.pop(seg)
        self.used_blocks -= b
        if not was_ref:
            self.evictable_blocks -= b
        if parent >= 0:
            self._children[parent] -= 1
        return parent

    def check(self) -> None:
        """Verify the invariants in the module docstring (O(size); tests only)."""
        ev = 0
        for seg, b in self._blocks.items():
            p = self._parent[seg]
            assert p < 0 or p in self._blocks, f"segment {seg} cached without its parent"
            if self._ref[seg] == 0:
                ev += b
            else:
                assert p < 0 or self._ref[p] >= self._ref[seg], "child referenced more than parent"
        assert ev == self.evictable_blocks, (ev, self.evictable_blocks)
        assert sum(self._blocks.values()) == self.used_blocks
