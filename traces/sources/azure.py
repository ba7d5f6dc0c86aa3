"""Azure LLM inference trace (paper Table 4: p 2508, d 23, sharing 0.01, density 33.2).

Histogram x-ranges (blendserve.md §6.1): 0–6K tokens. Input spread follows the public 2023 code
trace (CV about 0.96, ../shared/traces/README.md); the output spread was calibrated on 400K draws so
the source alone reaches Table 4's density with Llama-3-8B on an A100 at datasheet peaks. The system
prompt length gives the 0.01 sharing (25 / 2531 tokens per request).
"""

from __future__ import annotations

from blendsim.traces.sources.base import SingleTurnSource


class Azure(SingleTurnSource):
    name = "azure"
    kind = "api"
    summary = "API trace: p~2508, d~23 (both <=6K), sharing 0.01, density 33.2"
    paper_density = 33.2
    paper_sharing = 0.01
    system_len = 25
    prompt_mean, prompt_sigma, prompt_max = 2508.0, 0.9, 6000.0
    output_mean, output_sigma, output_max = 23.0, 1.3, 6000.0
    corr = 0.02  # calibrated; the real 2023 traces show corr(in, out) of about 0


SOURCE = Azure()
