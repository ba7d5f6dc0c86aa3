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
  acquire or release of a path through it; ties in insertion order).

Candidates for eviction are queued when they become unreferenced leaves, and checked when taken (a
node re-referenced or re-used since is a stale entry, skipped). Leaves freed by a release are
queued at the current time, which never decreases, so they form a FIFO queue in LRU order; parents
uncovered by an eviction carry an older last use and go into a small heap. Eviction takes the
older head of the two: the order of one heap of everything, at O(1) for the common case.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Any

# a node is one list [blocks, parent, ref, children, last_use] (one dict lookup per segment)
_BLOCKS, _PARENT, _REF, _CHILDREN, _LAST = range(5)


# A prompt path's prefix match, ``(hit, hit_tokens, new_blocks, pinned, nodes)``: ``hit`` leading
# segments cached, holding ``hit_tokens`` tokens; ``new_blocks`` the missing segments need;
# ``pinned`` blocks of hit segments that are unreferenced now (acquiring the path pins them, so they
# stop being evictable); ``nodes`` the hit segments' records. The hit is token-granular; the engine
# rounds it to whole blocks. A plain tuple: one is made per admission attempt, the hot path.
Match = tuple[int, int, int, int, list[list[Any]]]


class RadixCache:
    """Prompt-segment KV held once per segment, shared by reference count."""

    def __init__(self, block_size: int = 16) -> None:
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        self.block_size = block_size
        self._nodes: dict[int, list[Any]] = {}
        self._released: deque[tuple[float, int, int]] = deque()  # (last use, tie-break, seg), in order
        self._uncovered: list[tuple[float, int, int]] = []  # the same, a heap: parents of evicted leaves
        self._tick = 0
        self.used_blocks = 0
        self.evictable_blocks = 0
        self.evicted_blocks = 0  # total blocks evicted so far (a statistic)

    # ------------------------------------------------------------------ queries
    def span_blocks(self, start: int, end: int) -> int:
        """Full blocks whose last token lies in prompt tokens ``(start, end]``: a segment's blocks."""
        return end // self.block_size - start // self.block_size

    def __contains__(self, seg: int) -> bool:
        return seg in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def ref(self, seg: int) -> int:
        node = self._nodes.get(seg)
        return 0 if node is None else int(node[_REF])

    def lookup(self, segs: Sequence[int], lens: Sequence[int]) -> Match:
        """Prefix match of a prompt path without changing anything (:class:`Match`)."""
        hit_tokens = pinned = 0
        nodes = self._nodes
        found: list[list[Any]] = []
        for seg in segs:
            node = nodes.get(seg)
            if node is None:
                break
            hit_tokens += lens[len(found)]
            found.append(node)
            if node[_REF] == 0:
                pinned += node[_BLOCKS]
        hit = len(found)
        prompt = hit_tokens + sum(lens[hit:])
        bs = self.block_size
        return hit, hit_tokens, prompt // bs - hit_tokens // bs, pinned, found

    # ------------------------------------------------------------------ changes
    def acquire(
        self, segs: Sequence[int], lens: Sequence[int], now: float, match: Match | None = None
    ) -> None:
        """Reference every segment of the path, inserting the missing ones. ``match`` is the path's
        :meth:`lookup` if nothing changed since (it saves the walk). The caller makes room for the
        new blocks, before (:meth:`evict`) or right after: once acquired, the path is pinned."""
        if match is None:
            match = self.lookup(segs, lens)
        hit, hit_tokens, _new, _pinned, found = match
        evictable = 0
        for node in found:
            if node[_REF] == 0:
                evictable += node[_BLOCKS]
            node[_REF] += 1
            node[_LAST] = now
        self.evictable_blocks -= evictable
        if hit == len(segs):
            return
        nodes, bs = self._nodes, self.block_size
        parent = segs[hit - 1] if hit else -1
        end = hit_tokens
        added = 0
        for seg, ln in zip(segs[hit:], lens[hit:], strict=True):
            b = (end + ln) // bs - end // bs
            end += ln
            nodes[seg] = [b, parent, 1, 0, now]
            if parent >= 0:
                nodes[parent][_CHILDREN] += 1
            added += b
            parent = seg
        self.used_blocks += added

    def release(self, segs: Sequence[int], now: float) -> None:
        """Drop one reference along the path; nodes that become unreferenced leaves join the LRU."""
        nodes = self._nodes
        node: list[Any] = []
        for seg in segs:
            node = nodes[seg]
            node[_REF] -= 1
            node[_LAST] = now
            if node[_REF] == 0:
                self.evictable_blocks += node[_BLOCKS]
        if node[_REF] == 0 and node[_CHILDREN] == 0:
            self._tick += 1
            self._released.append((now, self._tick, segs[-1]))

    def discard(self, segs: Sequence[int], first: int) -> None:
        """Remove the path's segments from index ``first`` on, which the caller inserted and never
        computed (a request preempted before its prefill finished). They must be referenced only by
        that request and have no other cached children."""
        for seg in reversed(segs[first:]):
            node = self._nodes.get(seg)
            if node is None:
                continue
            assert node[_REF] == 1 and node[_CHILDREN] == 0, "discarding a shared segment"
            self._remove(seg, was_ref=True)
        # the caller still holds references on segs[:first]; release() handles them

    def evict(self, blocks_needed: int) -> int:
        """Evict unreferenced leaves, least recently used first, until ``blocks_needed`` are freed
        or nothing is evictable. Returns the blocks freed."""
        freed = 0
        released, uncovered, nodes = self._released, self._uncovered, self._nodes
        while freed < blocks_needed and (released or uncovered):
            if uncovered and (not released or uncovered[0] < released[0]):
                last, _, seg = heapq.heappop(uncovered)
            else:
                last, _, seg = released.popleft()
            node = nodes.get(seg)
            if node is None or node[_REF] or node[_CHILDREN] or node[_LAST] != last:
                continue  # stale entry
            del nodes[seg]
            freed += node[_BLOCKS]
            parent = node[_PARENT]
            if parent >= 0:
                up = nodes[parent]
                up[_CHILDREN] -= 1
                if up[_REF] == 0 and up[_CHILDREN] == 0:
                    self._tick += 1
                    heapq.heappush(uncovered, (up[_LAST], self._tick, parent))
        self.used_blocks -= freed
        self.evictable_blocks -= freed
        self.evicted_blocks += freed
        return freed

    # ------------------------------------------------------------------ internals
    def _remove(self, seg: int, was_ref: bool) -> int:
        node = self._nodes.pop(seg)
        b, parent = node[_BLOCKS], node[_PARENT]
        self.used_blocks -= b
        if not was_ref:
            self.evictable_blocks -= b
        if parent >= 0:
            self._nodes[parent][_CHILDREN] -= 1
        return int(parent)

    def check(self) -> None:
        """Verify the invariants in the module docstring (O(size); tests only)."""
        ev = 0
        nodes = self._nodes
        for seg, node in nodes.items():
            p = node[_PARENT]
            assert p < 0 or p in nodes, f"segment {seg} cached without its parent"
            if node[_REF] == 0:
                ev += node[_BLOCKS]
            else:
                assert p < 0 or nodes[p][_REF] >= node[_REF], "child referenced more than parent"
        assert ev == self.evictable_blocks, (ev, self.evictable_blocks)
        assert sum(node[_BLOCKS] for node in nodes.values()) == self.used_blocks
