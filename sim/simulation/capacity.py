"""What one replica can hold: its profile bound to the model, its KV capacity, and whether every
request of a trace fits in it at all."""

from __future__ import annotations

import numpy as np

from blendsim.errors import UserError
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile
from blendsim.sim.simulation.config import EngineConfig, kv_capacity_tokens
from blendsim.traces.trace import Trace


def bound_profile(profile: Profile, model: ModelSpec) -> Profile:
    """``profile`` bound to ``model`` (a profile measured for another model is a UserError)."""
    if profile.bound_model is not None and profile.bound_model.name == model.name:
        if profile.model is not None and profile.model != model.name:
            raise UserError(f"profile {profile.name!r} is for model {profile.model!r}, not {model.name!r}")
        return profile
    return profile.bind(model, profile.hardware.tp)


def kv_capacity_blocks(model: ModelSpec, profile: Profile, config: EngineConfig) -> int:
    """KV blocks of one replica: (memory - weights - reserve) over bytes per token, in blocks.
    Under tensor parallelism memory and the activation reserve are per GPU, weights are sharded."""
    if config.kv_capacity_override is not None:
        return int(config.kv_capacity_override) // config.block_size
    hw = profile.hardware
    cfg = config.with_(activation_reserve_bytes=config.activation_reserve_bytes * hw.tp)
    tokens = kv_capacity_tokens(hw.mem_capacity, model.weight_bytes, model.kv_bytes_per_token, cfg)
    if tokens <= 0:
        raise UserError(f"model {model.name} does not fit on {hw.name} x{hw.tp}: no memory left for KV")
    return tokens // config.block_size


def check_requests_fit(trace: Trace, capacity_blocks: int, block_size: int) -> None:
    """A request whose prompt and output KV exceed the whole cache can never finish: UserError.
    It needs ``ceil((p + d) / b)`` blocks, one more when its prompt ends on a block boundary (if it
    is wholly cached, its last block is recomputed into a copy: :mod:`blendsim.sim.simulation.blocks`)."""
    p = trace.prompt_len.astype(np.int64)
    need = -(-(p + trace.output_len) // block_size) + (p % block_size == 0)
    bad = np.flatnonzero(need > capacity_blocks)
    if len(bad):
        i = int(bad[0])
        raise UserError(
            f"request {int(trace.request_id[i])} needs {int(need[i]) * block_size} KV tokens "
            f"(prompt {int(trace.prompt_len[i])} + output {int(trace.output_len[i])}) but the "
            f"KV cache holds {capacity_blocks * block_size} tokens; shorten it, or give the engine "
            f"more memory (tensor parallelism, a larger GPU)"
        )
