"""MMLU 5-shot (paper Table 4: p 804, d 2, sharing 0.86, density 54.91).

Structure (blendserve.md §6.5): 57 subjects; a request is [system prompt, the subject's few-shot
prefix, a unique question]; the few-shot prefix (mean 687 tokens, so system + prefix is about 695)
is shared by every question of the subject, giving sharing S/p of about 0.86 once each subject has
many requests (sharing grows with the requests per subject). Output: 1–3 tokens (the answer).
The prefix mean is fixed exactly over the 57 subjects, so only which subjects are drawn varies.
"""

from __future__ import annotations

import numpy as np

from blendsim.traces.sources.base import Source, SourceBlock, bounded_lognormal, streams, to_tokens

SUBJECTS = 57  # hendrycks/test: 57 subjects
SYSTEM_LEN = 8
FEW_SHOT_MEAN = 687.0  # 804 - 109 - 8: the paper's p̄ minus the question and system prompt
QUESTION_MEAN = 109.0  # README of ../shared/traces: in0 (the question alone) is about 110 tokens


class MMLU(Source):
    name = "mmlu"
    kind = "benchmark"
    summary = "57 subjects x shared 5-shot prefix (~695 tok) + unique question, d 1-3, sharing 0.86"
    paper_density = 54.91
    paper_sharing = 0.86

    def few_shot_lens(self, seed: int) -> np.ndarray:
        (g,) = streams(seed, self.name + "/subjects", 1)
        raw = bounded_lognormal(g.standard_normal(SUBJECTS), FEW_SHOT_MEAN, 0.35, 250.0, 1500.0)
        return to_tokens(raw * (FEW_SHOT_MEAN / raw.mean()))

    def generate(self, n: int, seed: int) -> SourceBlock:
        g_subject, g_question, g_out = streams(seed, self.name, 3)
        few_shot = self.few_shot_lens(seed)
        subject = g_subject.integers(0, SUBJECTS, size=n)
        question = to_tokens(
            bounded_lognormal(g_question.standard_normal(n), QUESTION_MEAN, 0.5, 10.0, 1000.0)
        )
        ids = np.empty(3 * n, dtype=np.int64)
        lens = np.empty(3 * n, dtype=np.int64)
        ids[0::3], lens[0::3] = 0, SYSTEM_LEN
        ids[1::3], lens[1::3] = 1 + subject, few_shot[subject]
        ids[2::3], lens[2::3] = 1 + SUBJECTS + np.arange(n), question
        output = g_out.integers(1, 4, size=n).astype(np.int64)
        return SourceBlock(output, np.arange(0, 3 * n + 1, 3, dtype=np.int64), ids, lens)


SOURCE = MMLU()
