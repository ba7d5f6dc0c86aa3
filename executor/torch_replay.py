"""The torch step replay (:mod:`blendsim.profiler.forward_pass`), under the executor's name.

The replay lives in the profiler because the profiler measures its grid with the same code (so the
fitted model predicts exactly what the replay runs); the executor's torch backend imports it here.
"""

from __future__ import annotations

from blendsim.profiler.forward_pass import (
    CLOCKS,
    OPERATORS,
    Ring,
    StepReplayer,
    StepTiming,
    decode_batch,
    prefill_chunks,
)

__all__ = ["CLOCKS", "OPERATORS", "Ring", "StepReplayer", "StepTiming", "decode_batch", "prefill_chunks"]
