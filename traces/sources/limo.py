"""LIMO math reasoning (paper Fig. 2 / Table 4: p 109, d 7617, density 0.14; sharing not given).

Histogram x-ranges (blendserve.md §6.1): 0–20K tokens. The output spread (CV about 0.7, as §6.5
derives) was calibrated on 400K draws so the source alone reaches Table 4's density with Llama-3-8B
on an A100 at datasheet peaks. Only a short system prompt is shared.
"""

from __future__ import annotations

from blendsim.traces.sources.base import SingleTurnSource


class Limo(SingleTurnSource):
    name = "limo"
    kind = "reasoning"
    summary = "math reasoning: p~109, d~7617 (<=20K), density 0.14"
    paper_density = 0.14
    paper_sharing = None
    system_len = 8
    prompt_mean, prompt_sigma, prompt_max = 109.0, 0.6, 2000.0
    output_mean, output_sigma, output_max = 7617.0, 0.797, 20000.0


SOURCE = Limo()
