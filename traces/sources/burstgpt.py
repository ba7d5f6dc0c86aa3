"""BurstGPT: short API requests (paper Fig. 2 / Table 4: p 244, d 27, sharing 0.02, density 17.78).

Histogram x-ranges (blendserve.md §6.1): input and output within 0–500 tokens. The paper gives only
means, so the spreads and the p-d correlation below were calibrated (on 400K draws) so that the
source alone reaches Table 4's density with Llama-3-8B on an A100 at datasheet peaks; the system
prompt length gives the 0.02 sharing (5 / 271 tokens per request).
"""

from __future__ import annotations

from blendsim.traces.sources.base import SingleTurnSource


class BurstGPT(SingleTurnSource):
    name = "burstgpt"
    kind = "api"
    summary = "API trace: p~244, d~27 (both <=500), sharing 0.02, density 17.78"
    paper_density = 17.78
    paper_sharing = 0.02
    system_len = 5
    prompt_mean, prompt_sigma, prompt_max = 244.0, 0.6, 500.0
    output_mean, output_sigma, output_max = 27.0, 1.5, 500.0
    corr = 0.711  # calibrated: density 17.78 needs E[pd] above p̄·d̄ (blendserve.md §6.5)


SOURCE = BurstGPT()
