"""OpenVid-1M as auto-regressive video generation (paper Table 4: p 121, d 16K, density 0.05).

Output = frames x 256 tokens (per-frame tokens as in LWM and LongVILA, blendserve.md §6.2). Raw
videos average 43,726 tokens (about 171 frames) inside the histogram's 0–150K range, i.e. at most
586 frames; the frame count is rescaled by 16384 / 43726 so the mean output is 16K, as the paper
does. The frame-count spread (CV near 1, §6.5) was calibrated on 400K draws so the source alone
reaches Table 4's density with Llama-3-8B on an A100 at datasheet peaks. Sharing is about 0.
"""

from __future__ import annotations

import numpy as np

from blendsim.traces.sources.base import (
    Source,
    SourceBlock,
    bounded_lognormal,
    single_turn_block,
    streams,
    to_tokens,
)

TOKENS_PER_FRAME = 256
RAW_MEAN_TOKENS = 43726.0  # paper Fig. 2
TARGET_MEAN_TOKENS = 16384.0  # "normalised to 16K"
MAX_RAW_TOKENS = 150_000.0  # histogram x-range
SYSTEM_LEN = 10


class OpenVid(Source):
    name = "openvid"
    kind = "video"
    summary = "video generation: p~121, d = frames x 256 rescaled to mean 16K (raw <=150K), density 0.05"
    paper_density = 0.05
    paper_sharing = 0.0
    frame_sigma = 1.18  # calibrated

    def generate(self, n: int, seed: int) -> SourceBlock:
        g_prompt, g_frames = streams(seed, self.name, 2)
        p = to_tokens(
            bounded_lognormal(g_prompt.standard_normal(n), 121.0, 0.5, SYSTEM_LEN + 1, 1000.0),
            lo=SYSTEM_LEN + 1,
        )
        raw_frames = bounded_lognormal(
            g_frames.standard_normal(n),
            RAW_MEAN_TOKENS / TOKENS_PER_FRAME,
            self.frame_sigma,
            1.0,
            MAX_RAW_TOKENS / TOKENS_PER_FRAME,
        )
        frames = to_tokens(raw_frames * (TARGET_MEAN_TOKENS / RAW_MEAN_TOKENS))
        return single_turn_block(SYSTEM_LEN, p - SYSTEM_LEN, frames * np.int64(TOKENS_PER_FRAME))


SOURCE = OpenVid()
