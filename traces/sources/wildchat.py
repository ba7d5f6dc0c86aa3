"""WildChat multi-turn conversations (paper Table 4: p 496, d 510 -> 256, sharing 0.19, density 2.13).

Structure: a conversation's turn j (0-based) has the prompt
``[system, u_0, a_0, u_1, a_1, ..., u_j]``: every earlier user message and answer are the same
segments as in the earlier turns, so a later turn extends the earlier turn's prompt and its answer.
Turn j's output is ``a_j``. That reuse gives the source its 0.19 sharing.

Lengths stay inside the histogram's 0–3K range (blendserve.md §6.1): a conversation ends before a
turn whose prompt would exceed 3K. Answers are drawn at the raw 510-token mean (within 0–3K) and
scaled by 256/510, the paper's normalisation. The number of turns, user-message mean and answer
spread were calibrated on 400K draws to the paper's p̄ 496, sharing 0.19 and density 2.13 for
Llama-3-8B on an A100 at datasheet peaks.

Local ids: 0 = system prompt; turn ``f`` (flat index over all drawn turns) has user message id
``1 + 2f`` and answer id ``2 + 2f``, so turn j of a conversation starting at flat turn c uses the
consecutive ids ``1 + 2c .. 1 + 2(c + j)``.
"""

from __future__ import annotations

import numpy as np

from blendsim.traces.sources.base import Source, SourceBlock, bounded_lognormal, streams, to_tokens

SYSTEM_LEN = 12
MAX_PROMPT = 3000
RAW_OUTPUT_MEAN, OUTPUT_MEAN = 510.0, 256.0


class WildChat(Source):
    name = "wildchat"
    kind = "chat"
    summary = "multi-turn chat: later turns extend earlier ones; p~496, d~256 (<=3K), sharing 0.19"
    paper_density = 2.13
    paper_sharing = 0.19
    continue_prob = 0.30  # P(another turn): calibrated
    user_mean, user_sigma = 280.0, 1.2  # calibrated
    answer_sigma = 1.55  # calibrated (raw answers, before the 256/510 scaling)

    def _draw(self, conversations: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Turns per conversation (before the 3K cap), user lengths and answer lengths per flat turn."""
        g_turns, g_user, g_answer = streams(seed, self.name, 3)
        turns = g_turns.geometric(1 - self.continue_prob, size=conversations)  # >= 1
        total = int(turns.sum())
        user = to_tokens(
            bounded_lognormal(
                g_user.standard_normal(total), self.user_mean, self.user_sigma, 1.0, MAX_PROMPT / 2
            )
        )
        raw = bounded_lognormal(
            g_answer.standard_normal(total), RAW_OUTPUT_MEAN, self.answer_sigma, 1.0, 3000.0
        )
        return turns, user, to_tokens(raw * (OUTPUT_MEAN / RAW_OUTPUT_MEAN))

    def generate(self, n: int, seed: int) -> SourceBlock:
        conversations = max(16, int(n / (1 / (1 - self.continue_prob)) * 1.2) + 16)
        while True:
            turns, user, answer = self._draw(conversations, seed)
            start = np.repeat(np.cumsum(turns) - turns, turns)  # flat index of each turn's first turn
            j = np.arange(len(start)) - start
            # prompt of turn j: system + sum over earlier turns of (u + a) + u_j
            pair = np.cumsum(user + answer) - (user + answer)  # sum of (u + a) before each flat turn
            prompt = SYSTEM_LEN + pair - pair[start] + user
            # keep turns until the first one over the cap (prompts grow within a conversation)
            over = prompt > MAX_PROMPT
            first_over = np.maximum.accumulate(np.where(over, np.arange(len(over)), -1))
            keep = ~(first_over >= start)
            if int(keep.sum()) >= n:
                break
            conversations *= 2
        flat = np.flatnonzero(keep)[:n]
        return self._block(start[flat], j[flat], user, answer)

    @staticmethod
    def _block(start: np.ndarray, j: np.ndarray, user: np.ndarray, answer: np.ndarray) -> SourceBlock:
        counts = 2 + 2 * j
        offsets = np.zeros(len(j) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        k = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)  # position within the request
        ids = np.where(k == 0, 0, np.repeat(1 + 2 * start, counts) + k - 1).astype(np.int64)
        id_lens = np.empty(2 * len(user) + 1, dtype=np.int64)
        id_lens[0], id_lens[1::2], id_lens[2::2] = SYSTEM_LEN, user, answer
        return SourceBlock(answer[start + j], offsets, ids, id_lens[ids])


SOURCE = WildChat()
