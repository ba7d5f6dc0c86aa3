"""``--lengths-from``: draw (input, output) pairs from a real trace instead of a source's model.

Applies to the sources whose requests are one system prompt plus one body (burstgpt, azure,
sharegpt, limo): the body takes a recorded input length and the output the recorded output length,
resampled with replacement from their own stream (prefix-stable, as every source). The structured
sources (mmlu, wildchat, openvid) keep their generators.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blendsim.errors import UserError
from blendsim.traces.sources.base import SingleTurnSource, Source, SourceBlock, single_turn_block, streams


class ReplayedLengths(Source):
    """``base``'s system prompt and name, with (input, output) pairs drawn from recorded lengths."""

    def __init__(self, base: SingleTurnSource, inputs: np.ndarray, outputs: np.ndarray, origin: str):
        self.base = base
        self.name = base.name
        self.kind = base.kind
        self.summary = f"{base.name} with lengths from {origin}"
        self.inputs = np.maximum(inputs.astype(np.int64), 1)
        self.outputs = np.maximum(outputs.astype(np.int64), 1)

    def generate(self, n: int, seed: int) -> SourceBlock:
        (g,) = streams(seed, self.name + "/replay", 1)
        pick = g.integers(0, len(self.inputs), size=n)
        return single_turn_block(self.base.system_len, self.inputs[pick], self.outputs[pick])


def with_lengths_from(sources: Sequence[Source], path: str) -> list[Source]:
    from blendsim.traces.loaders import load_lengths

    replayable = [s for s in sources if isinstance(s, SingleTurnSource)]
    if not replayable:
        raise UserError(
            f"--lengths-from applies to burstgpt, azure, sharegpt or limo; --mix has none of them "
            f"({','.join(s.name for s in sources)})"
        )
    inputs, outputs = load_lengths(path)
    return [
        ReplayedLengths(s, inputs, outputs, path) if isinstance(s, SingleTurnSource) else s for s in sources
    ]
