"""Shared test helpers: the repository root, the real traces beside it, a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blendsim.profiler.models import ModelSpec, model_from_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TRACES = REPO_ROOT.parent / "shared" / "traces"


@pytest.fixture
def shared_traces() -> Path:
    """The real trace files in ../shared/traces/; tests that need them skip if absent."""
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"real traces not found at {SHARED_TRACES}")
    return SHARED_TRACES


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    """A 2-layer model (hidden 64, 4 heads, 2 KV heads) from its own config.json: torch steps in ms."""
    d = tmp_path_factory.mktemp("tiny")
    config = {
        "_name_or_path": "tiny-2l",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 512,
        "tie_word_embeddings": True,
    }
    (d / "config.json").write_text(json.dumps(config))
    return model_from_config(d / "config.json")
