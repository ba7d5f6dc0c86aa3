"""BlockAllocator: one replica's paged KV, the radix cache's shared prompt blocks plus every running
request's private blocks, and the KV each admission is charged.

KV is paged as vLLM lays it out (block ``b``): a request holds ``ceil((p + g) / b)`` blocks for its
prompt and the ``g`` output tokens whose KV exists; the ``p // b`` full prompt blocks are the
cache's, shared (:mod:`.kvcache`), the rest is its own (*private*: the partial last prompt block and
the output), freed when it leaves. Prefix hits are block-granular (vLLM's): a request skips the
longest cached prefix of its prompt rounded *down* to a multiple of ``b``, and never its last prompt
token (one must be computed to sample from): ``min(cached, p - 1) // b * b`` tokens. The cached
tokens past the last whole block are recomputed into the block that follows, which is the next
segment's or the private partial block, so nothing is held twice, except when the whole prompt is
cached and ends on a block boundary: its last block is then recomputed into one more private block
(*duplicate*; vLLM computes a copy too).

An admission is *charged* its private blocks up to a planned output (the admission rule's share of
its estimate) plus its duplicate; the charges of running requests and the pinned prompt KV are the
KV the admission rule counts as taken (``committed_blocks``), while ``used_blocks`` is what is held.

Invariants (tests): ``used_blocks <= capacity`` after every admission and once the engine has made
room for a step; ``private_blocks`` and ``charge_total`` are sums over running requests, 0 when
none runs.
"""

from __future__ import annotations

from blendsim.sim.simulation.kvcache import RadixCache


class BlockAllocator:
    """Paged KV over a radix prefix cache (module docstring); per-request state by position."""

    def __init__(self, capacity_blocks: int, block_size: int, n_requests: int) -> None:
        self.capacity = capacity_blocks
        self.bs = block_size
        self.cache = RadixCache(block_size)
        self.private_blocks = 0  # own KV of running requests (partial prompt block, output, duplicates)
        self.charge_total = 0  # sum of the charges of running requests
        self.hit_segs = [0] * n_requests  # leading segments that were hits at its current admission
        self.dup_blocks = [0] * n_requests  # 1: its wholly cached, block-aligned prompt's last block
        self.charge = [0] * n_requests  # blocks charged at its current admission

    def own_blocks(self, prompt: int, out: int) -> int:
        """Private blocks of a request of ``prompt`` tokens holding KV of ``out`` output tokens."""
        bs = self.bs
        return -(-(prompt + out) // bs) - prompt // bs

    @property
    def used_blocks(self) -> int:
        return self.cache.used_blocks + self.private_blocks

    @property
    def committed_blocks(self) -> int:
        """KV the admission rule counts as taken: pinned prompt KV plus every running charge."""
        cache = self.cache
        return cache.used_blocks - cache.evictable_blocks + self.charge_total

    def reserve(
        self, pos: int, segs: list[int], lens: list[int], prompt: int, gen: int, charged_out: int, now: float
    ) -> tuple[int, int, int] | None:
        """Admit ``pos`` (``gen`` output tokens already generated) if the admission rule and the free
        KV allow, charging it its private blocks up to ``charged_out`` output tokens; evicts
        unreferenced prefixes for the blocks it takes now. Returns ``(hit_tokens, new_blocks,
        charge)`` (the whole-block prefix hit, the prompt blocks the cache inserts, the blocks
        charged) or None, changing nothing, when it does not fit."""
        cache, bs = self.cache, self.bs
        match = cache.lookup(segs, lens)
        hit, cached, new_blocks, pinned, _nodes = match
        hit_tokens = (
            (cached if cached < prompt else prompt - 1) // bs * bs
        )  # whole blocks, not the last token
        dup = cached // bs - hit_tokens // bs  # 1: a cached block recomputed (module docstring)
        full = prompt // bs  # the prompt's full blocks, the cache's (own blocks are the rest)
        charge = -(-(prompt + charged_out) // bs) - full + dup
        capacity = self.capacity
        if cache.used_blocks - cache.evictable_blocks + self.charge_total + new_blocks + charge > capacity:
            return None
        own_now = -(-(prompt + gen) // bs) - full + dup
        taken = new_blocks + own_now  # missing segments and its own blocks
        free = capacity - cache.used_blocks - self.private_blocks
        if taken > free + cache.evictable_blocks - pinned:
            return None
        cache.acquire(segs, lens, now, match)  # pinned first: the eviction never takes its own path
        if taken > free:
            cache.evict(taken - free)
        self.private_blocks += own_now
        self.hit_segs[pos] = hit
        self.dup_blocks[pos] = dup
        self.charge[pos] = charge
        self.charge_total += charge
        return hit_tokens, new_blocks, charge

    def grow(self, blocks: int) -> None:
        """Decodes wrote ``blocks`` new private blocks."""
        self.private_blocks += blocks

    def free(self, pos: int, segs: list[int], private: int, now: float) -> None:
        """``pos`` stops running with its prompt computed (finished, or preempted while decoding):
        its ``private`` blocks and its charge go, its prompt path is unreferenced (stays cached)."""
        self.private_blocks -= private
        self._uncharge(pos)
        self.cache.release(segs, now)

    def discard(self, pos: int, segs: list[int], private: int, now: float) -> None:
        """``pos`` is preempted before its prefill finished: the segments its admission inserted
        were never computed and leave the cache (conservative if partly done); its hits are
        unreferenced, its ``private`` blocks and its charge go."""
        hit = self.hit_segs[pos]
        self.cache.discard(segs, hit)
        if hit:
            self.cache.release(segs[:hit], now)
        self.private_blocks -= private
        self._uncharge(pos)

    def make_room(self, need: int) -> int:
        """Evict unreferenced prefixes towards ``need`` blocks; returns the blocks still missing."""
        return need - self.cache.evict(need) if need > 0 else need

    def _uncharge(self, pos: int) -> None:
        self.private_blocks -= self.dup_blocks[pos]
        self.dup_blocks[pos] = 0
        self.charge_total -= self.charge[pos]
        self.charge[pos] = 0
