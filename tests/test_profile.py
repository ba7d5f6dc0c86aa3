"""Profile JSON, built-ins and resolve_profile's user errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.models import get_model
from blendsim.profiler.profile import Profile, builtin_names, builtin_profile, load_profile, resolve_profile


def measured_copy(model: str | None) -> Profile:
    base = builtin_profile("a100-80g")
    prov = dataclasses.replace(base.provenance, measured=True, date="2025-01-01", fit_error={"gemm": 0.05})
    return dataclasses.replace(base, name="test-measured", model=model, provenance=prov)


def test_json_round_trip(tmp_path: Path) -> None:
    p = measured_copy("llama-3-8b")
    path = tmp_path / "p.json"
    p.save(path)
    back = load_profile(path)
    assert back == p
    assert back.provenance.fit_error == {"gemm": 0.05}


def test_bound_profile_saves_per_gpu(tmp_path: Path) -> None:
    bound = resolve_profile("h100-sxm", None, get_model("llama-3-8b"), tp=4)
    assert bound.hardware.tp == 4
    bound.save(tmp_path / "p.json")
    assert load_profile(tmp_path / "p.json").hardware == builtin_profile("h100-sxm").hardware


def test_builtin_names_include_the_three_gpus() -> None:
    assert {"a100-80g", "h100-sxm", "h200"} <= set(builtin_names())


def test_unknown_gpu_lists_valid_ones() -> None:
    with pytest.raises(UserError, match="a100-80g.*h100-sxm.*h200"):
        resolve_profile("v100", None, get_model("llama-3-8b"))


def test_profile_of_another_model_names_both(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    measured_copy("smollm2-135m").save(path)
    with pytest.raises(UserError, match="smollm2-135m.*llama-3-8b"):
        resolve_profile(None, str(path), get_model("llama-3-8b"))
    assert resolve_profile(None, str(path), get_model("smollm2-135m")).model == "smollm2-135m"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": "something-else"}',
        None,  # valid JSON profile with a field removed
        "negative",  # an efficiency out of range
        "extra",  # an unknown field
    ],
)
def test_invalid_profile_file_is_a_user_error(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "bad.json"
    data = builtin_profile("a100-80g").to_dict()
    if content is None:
        del data["params"]["kappa"]
        path.write_text(json.dumps(data))
    elif content == "negative":
        data["params"]["kv_bw_eff"] = -1
        path.write_text(json.dumps(data))
    elif content == "extra":
        data["hardware"]["colour"] = "green"
        path.write_text(json.dumps(data))
    else:
        path.write_text(content)
    with pytest.raises(UserError, match="profile"):
        load_profile(path)


def test_missing_profile_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        resolve_profile(None, str(tmp_path / "nope.json"), get_model("llama-3-8b"))


def test_unbound_profile_refuses_to_time_steps() -> None:
    with pytest.raises(RuntimeError, match="bind"):
        builtin_profile("h200").step_time(BatchShape(prefill_tokens=1), "serial")
