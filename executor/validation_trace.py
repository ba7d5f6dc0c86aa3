"""The scaled trace of the CPU validation: the paper's source generators with lengths scaled to fit
SmolLM2-135M on a CPU (prompts and outputs at most 1,024 tokens).

Mix (requests at full size; ``quick`` keeps about a quarter):

=========  ======  ======================  =========================================================
source     count   length scaling          role
=========  ======  ======================  =========================================================
mmlu       130     prompt x0.5             compute-heavy, shared few-shot prefixes (sharing ~0.6)
burstgpt    60     as generated (<= 500)   compute-heavy API calls, short outputs
sharegpt    50     prompt, output x0.5     chat, balanced
openvid     20     output / 16             memory-heavy: short prompts, long outputs
=========  ======  ======================  =========================================================

Scaling maps each *segment* length ``l`` to ``max(1, round(l x f))``: equal segment ids keep equal
lengths, so the segment invariant (an id fixes its whole prefix) and the sharing structure survive.
Prompts are then cut to at most ``MAX_PROMPT`` tokens by dropping trailing segments (a segment that
crosses the limit is shortened and gets a fresh id, so no other request's prefix changes) and
outputs are clipped to ``[1, MAX_OUTPUT]``. Arrival order is the sources interleaved at random
(seeded). The mix and counts are fixed, not solved for a density: the validation needs a mix of both
kinds, not a particular point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendsim.traces.assemble import assemble
from blendsim.traces.sources import get_source
from blendsim.traces.sources.base import SourceBlock
from blendsim.traces.trace import Trace

MAX_PROMPT = 1024
MAX_OUTPUT = 1024


@dataclass(frozen=True)
class ScaledSource:
    name: str
    count: int
    prompt_scale: float
    output_scale: float


VALIDATION_MIX = (
    ScaledSource("mmlu", 130, 0.5, 1.0),
    ScaledSource("burstgpt", 60, 1.0, 1.0),
    ScaledSource("sharegpt", 50, 0.5, 0.5),
    ScaledSource("openvid", 20, 1.0, 1 / 16),
)
# The overlapping engine's validation: the order matters when the GEMM side and the attention side have
# work to hide behind each other, so more memory-heavy long outputs (openvid, outputs / 16: up to the
# 1,024-token cap) beside compute-heavy long prompts (mmlu at full length, burstgpt), sized to this
# CPU (SmolLM2-135M's GEMMs stop being weight-bound at ~32 tokens; a 2 GiB KV cache holds ~93K tokens).
OVERLAP_MIX = (
    ScaledSource("mmlu", 90, 1.0, 1.0),
    ScaledSource("burstgpt", 50, 1.0, 1.0),
    ScaledSource("openvid", 60, 1.0, 1 / 16),
)
QUICK_FRACTION = 0.25


def _scaled(block: SourceBlock, src: ScaledSource) -> SourceBlock:
    lens = np.maximum(np.rint(block.seg_lens * src.prompt_scale), 1).astype(np.int64)
    offsets = block.seg_offsets
    keep_ids: list[np.ndarray] = []
    keep_lens: list[np.ndarray] = []
    new_offsets = [0]
    fresh = block.id_span
    for i in range(len(block)):
        a, b = int(offsets[i]), int(offsets[i + 1])
        seg_lens = lens[a:b].copy()
        cum = np.cumsum(seg_lens)
        last = int(np.searchsorted(cum, MAX_PROMPT, side="left"))  # first segment reaching the cap
        ids = block.seg_ids[a:b].copy()
        if last < len(seg_lens) and cum[last] > MAX_PROMPT:
            seg_lens, ids = seg_lens[: last + 1], ids[: last + 1]
            seg_lens[-1] -= int(cum[last]) - MAX_PROMPT
            ids[-1] = fresh
            fresh += 1
        elif last < len(seg_lens):
            seg_lens, ids = seg_lens[: last + 1], ids[: last + 1]
        keep_ids.append(ids)
        keep_lens.append(seg_lens)
        new_offsets.append(new_offsets[-1] + len(seg_lens))
    out = np.clip(np.rint(block.output_len * src.output_scale), 1, MAX_OUTPUT).astype(np.int64)
    return SourceBlock(
        out, np.asarray(new_offsets, dtype=np.int64), np.concatenate(keep_ids), np.concatenate(keep_lens)
    )


def validation_trace(
    quick: bool = False, seed: int = 0, mix: tuple[ScaledSource, ...] = VALIDATION_MIX
) -> Trace:
    """The validation trace (module docstring) of ``mix``; same arguments, same trace."""
    blocks, names = [], []
    for src in mix:
        n = max(2, round(src.count * QUICK_FRACTION)) if quick else src.count
        blocks.append(_scaled(get_source(src.name).generate(n, seed), src))
        names.append(src.name)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x5CA1E])))
    trace = assemble(blocks, names, "interleaved", rng)
    trace.validate()
    trace.metadata = {
        "generator": "blendsim.executor.validation_trace",
        "seed": seed,
        "quick": quick,
        "model": "smollm2-135m",
        "mix": {
            s.name: {"count": len(b), "prompt_scale": s.prompt_scale, "output_scale": s.output_scale}
            for s, b in zip(mix, blocks, strict=True)
        },
        "max_prompt": MAX_PROMPT,
        "max_output": MAX_OUTPUT,
        "sharing": trace.sharing(),
    }
    return trace
