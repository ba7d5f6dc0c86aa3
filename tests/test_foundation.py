"""The lead's foundation: specs, request-level cost, the Trace container, CLI errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.outputs import atomic_output
from blendsim.profiler.cost import comp_time, mem_time, set_density
from blendsim.profiler.gpus import GPUS, get_gpu
from blendsim.profiler.models import MODELS, get_model, model_from_config
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA3 = MODELS["llama-3-8b"]
A100 = GPUS["a100-80g"]


def test_llama3_kv_bytes_match_paper() -> None:
    # blendserve.md §2.4: 1024 (kv width) x 32 layers x 4 bytes = 128 KiB per token
    assert LLAMA3.kv_bytes_per_token == 131072


def test_every_model_has_consistent_shapes() -> None:
    for m in MODELS.values():
        assert m.num_heads % m.num_kv_heads == 0, m.name
        # the per-layer weights explain most of the published parameter count
        assert 0.7 < (m.layer_params + m.lm_head_params) / m.params < 1.15, m.name


def test_request_level_cost_exact_on_toy_numbers() -> None:
    p, d = 100, 10
    assert comp_time(p, d, LLAMA3, A100) == pytest.approx(2 * 110 * 8.03e9 / 312e12)
    assert mem_time(p, d, LLAMA3, A100) == pytest.approx((1000 + 50) * 131072 / 2.039e12)


def test_mmlu_like_density() -> None:
    # the check: p=804, d=2, 697 shared (s = 0.8646) gives 54.2 +- 2 %
    assert set_density(804, 2, LLAMA3, A100, saved_tokens=697) == pytest.approx(54.2, rel=0.02)


def test_tp_scales_peaks() -> None:
    tp8 = A100.with_tp(8)
    assert tp8.peak_flops == pytest.approx(8 * A100.peak_flops)
    assert tp8.with_tp(1).mem_bandwidth == pytest.approx(A100.mem_bandwidth)
    with pytest.raises(UserError):
        A100.with_tp(0)


def test_unknown_names_are_user_errors() -> None:
    with pytest.raises(UserError, match="valid: .*llama-3-8b"):
        get_model("gpt-9")
    with pytest.raises(UserError, match="a100-80g"):
        get_gpu("tpu")


def test_model_from_config(tmp_path) -> None:
    cfg = {
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    m = model_from_config(path)
    assert (m.head_dim, m.num_kv_heads) == (16, 2)
    assert m.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    assert m.params == m.layer_params + 1000 * 64
    del cfg["vocab_size"]
    path.write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="vocab_size"):
        model_from_config(path)


def _toy_trace() -> Trace:
    # two requests share system prompt 1 and prefix 2; one only the system prompt
    reqs = [
        Request(0, "a", (1, 2, 3), (10, 20, 5), 7),
        Request(1, "a", (1, 2, 4), (10, 20, 6), 3),
        Request(2, "b", (1, 5), (10, 8), 100),
    ]
    return Trace.from_requests(reqs)


def test_trace_sharing_counts_each_segment_once() -> None:
    t = _toy_trace()
    t.validate()
    assert list(t.prompt_len) == [35, 36, 18]
    assert t.saved_tokens() == (10 + 20) + 10
    assert t.sharing() == pytest.approx(40 / (35 + 36 + 18 + 110))
    assert t.saved_tokens(np.array([True, False, True])) == 10


def test_trace_subset_and_roundtrip_requests() -> None:
    t = _toy_trace()
    s = t.subset(np.array([2, 0]))
    assert [r.request_id for r in s] == [2, 0]
    assert s.request(1) == t.request(0)
    assert list(s.prompt_len) == [18, 35]


def test_trace_validate_rejects_broken_segment_invariant() -> None:
    reqs = [Request(0, "a", (1, 2), (10, 20), 1), Request(1, "a", (3, 2), (10, 20), 1)]
    with pytest.raises(UserError, match="two different prefixes"):
        Trace.from_requests(reqs).validate()
    reqs = [Request(0, "a", (1,), (10,), 1), Request(1, "a", (1,), (11,), 1)]
    with pytest.raises(UserError, match="two different lengths"):
        Trace.from_requests(reqs).validate()


def test_atomic_output_leaves_nothing_on_error(tmp_path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    with pytest.raises(UserError, match="does not exist"), atomic_output(tmp_path / "no" / "x"):
        pass


def test_atomic_output_follows_the_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_cli_help_lists_verbs(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "blendsim sweep --sharing-ratio 0.5" in capsys.readouterr().out


def test_cli_without_verb_prints_help_and_exits_2(capsys) -> None:
    assert main([]) == 2
    assert "usage: blendsim" in capsys.readouterr().out
