"""Marks of the tests that run vLLM's CPU build with SmolLM2-135M: skipped, with the reason, without them."""

from __future__ import annotations

import pytest

from blendsim.executor.model_prep import default_model_dir, is_prepared
from blendsim.executor.vllm_engine import vllm_installed

NEEDS_VLLM = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        vllm_installed() is None, reason="vLLM is not installed here (`blendsim executor setup --device cpu`)"
    ),
    pytest.mark.skipif(
        not is_prepared(default_model_dir()),
        reason=f"no SmolLM2 model directory at {default_model_dir()} (`blendsim executor prepare-model`)",
    ),
]
