"""Token ids for a trace's prompts, derived from segment ids.

A trace stores no text: request ``i``'s prompt is the concatenation of its segments. Each segment id
maps to a fixed pseudo-random token sequence of its length (a generator seeded by ``(seed, seg_id)``),
so equal segments give equal tokens and an engine's prefix cache sees exactly the trace's sharing.
By the segment invariant (an id fixes its whole prefix), equal prefixes of segment ids are equal
token prefixes, and different segment ids almost surely differ in their first token.

Tokens are drawn from ``[low, vocab_size)``; ``low`` skips the special tokens that tokenizers put
at the start of the vocabulary (SmolLM2's are ids 0-16).
"""

from __future__ import annotations

import numpy as np

from blendsim.traces.trace import Trace

DEFAULT_LOW_TOKEN = 1000


class PromptBuilder:
    """Builds (and caches per segment) the token ids of a trace's prompts.

    Invariant: ``tokens(i)`` has length ``trace.prompt_len[i]`` and is a pure function of
    ``(seed, segment ids and lengths of request i, vocab_size, low)``.
    """

    def __init__(self, trace: Trace, vocab_size: int, seed: int = 0, low: int = DEFAULT_LOW_TOKEN) -> None:
        if vocab_size <= low + 1:
            raise ValueError(f"vocab_size {vocab_size} must exceed the lowest token id {low} + 1")
        self.trace = trace
        self.vocab_size = int(vocab_size)
        self.seed = int(seed)
        self.low = int(low)
        self._cache: dict[int, np.ndarray] = {}

    def segment(self, seg_id: int, length: int) -> np.ndarray:
        toks = self._cache.get(seg_id)
        if toks is None or len(toks) != length:
            rng = np.random.default_rng([self.seed, int(seg_id) & 0xFFFFFFFFFFFF, int(seg_id) >> 48])
            toks = rng.integers(self.low, self.vocab_size, size=int(length), dtype=np.int64)
            self._cache[seg_id] = toks
        return toks

    def tokens(self, i: int) -> list[int]:
        """Prompt token ids of request position ``i``."""
        ids, lens = self.trace.segments_of(i)
        parts = [self.segment(int(s), int(n)) for s, n in zip(ids, lens, strict=True)]
        return np.concatenate(parts).tolist() if parts else []


def block_saved_tokens(trace: Trace, order: np.ndarray, block_size: int) -> int:
    """Prompt tokens a block-granular prefix cache (unbounded, never evicting) serves in ``order``.

    A request hits the longest prefix already computed by an earlier request, rounded down to whole
    blocks, and never its last prompt token (an engine must compute at least one token to sample).
    This is what vLLM's prefix cache can at best report when nothing is evicted.
    """
    seen: set[int] = set()
    saved = 0
    for pos in np.asarray(order, dtype=np.int64):
        ids, lens = trace.segments_of(int(pos))
        ends = np.cumsum(lens)
        shared = 0
        for k, seg in enumerate(ids):  # an id fixes its prefix: a seen id means a seen prefix
            if int(seg) not in seen:
                break
            shared = int(ends[k])
        hit = min(shared, int(ends[-1]) - 1) // block_size * block_size
        saved += max(hit, 0)
        seen.update(int(x) for x in ids)
    return saved
