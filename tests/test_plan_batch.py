"""plan-batch without an engine: the ordered file, the plan file, the targets, the pilot's estimate
from given results, and run-batch's checks of a plan before vLLM would start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from batch_helpers import chat_line, tiny_model_dir, write_jsonl

from blendsim.cli import main
from blendsim.executor.batch_plan import BatchPlan, plan_path
from blendsim.executor.pilot import pilot_lengths
from blendsim.executor.vllm_engine import VllmRunConfig
from blendsim.traces.importers import ImportOptions, import_trace

SYSTEMS = ["you are a terse expert " * 4, "you are a helpful assistant explain why " * 4]
QUESTIONS = ["what is two plus three", "sort list python", "explain why sky blue", "write code function"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_model_dir(tmp_path_factory.mktemp("tok")))


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    lines = []
    for i in range(12):  # the two system prompts alternate, as a job that writes per item would
        msgs = [{"role": "system", "content": SYSTEMS[i % 2]}, {"role": "user", "content": QUESTIONS[i % 4]}]
        lines.append(chat_line(f"q{i}", msgs, max_tokens=4 + 30 * (i % 3)))
    return write_jsonl(tmp_path / "batch.jsonl", lines)


def _plan(batch: Path, model_dir: str, *extra: str) -> int:
    out = batch.with_name("ordered.jsonl")
    argv = ["plan-batch", str(batch), "-o", str(out), "--gpu", "a100-80g", "--model-dir", model_dir]
    return main([*argv, "--block-size", "4", "-q", *extra])


def test_ordered_file_holds_the_batch_lines_in_the_chosen_order(
    batch: Path, model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(batch, model_dir, "--choose", "dfs") == 0
    printed = capsys.readouterr().out
    assert "fifo" in printed and "<- written" in printed and "margin of dfs over the file as given" in printed
    ordered = batch.with_name("ordered.jsonl")
    lines, out = batch.read_text().splitlines(), ordered.read_text().splitlines()
    plan = BatchPlan.read(plan_path(ordered))
    assert out == [lines[k] for k in plan.order] and sorted(plan.order) == list(range(12))
    systems = [json.loads(x)["body"]["messages"][0]["content"] for x in out]
    assert (
        sum(a != b for a, b in zip(systems, systems[1:], strict=False)) == 1
    )  # dfs: one system prompt, then the other
    assert (
        plan.policy == "dfs"
        and plan.target == "run-batch"
        and set(plan.predictions) == {"fifo", "dfs", "blend"}
    )
    assert plan.release_steps is None and plan.lengths["source"] == "max_tokens"
    assert plan.engine["block_size"] == 4 and plan.vllm["max_num_batched_tokens"] == 2048
    # a 2 GiB cache evicts nothing here: every order hits every shared block
    assert plan.predictions["dfs"]["cached_tokens"] == plan.predictions["fifo"]["cached_tokens"] > 0
    plan.check_matches(ordered)


def test_best_policy_and_replay_target(
    batch: Path, model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(batch, model_dir, "--target", "replay", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    best = max(shown["predictions"], key=lambda p: shown["predictions"][p]["throughput_tok_s"])
    assert shown["policy"] == best and shown["target"] == "replay"
    plan = BatchPlan.read(plan_path(batch.with_name("ordered.jsonl")))
    assert plan.release_steps is not None and len(plan.release_steps) == 12
    assert np.all(np.diff(plan.release_steps) >= 0)


def test_published_baselines_plan_a_batch_lpm_as_the_order_it_admitted(
    batch: Path, model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(batch, model_dir, "--policy", "fifo,batchllm,lpm,dfs-weight", "--choose", "lpm") == 0
    capsys.readouterr()
    ordered = batch.with_name("ordered.jsonl")
    plan = BatchPlan.read(plan_path(ordered))
    assert plan.policy == "lpm" and set(plan.predictions) == {"fifo", "batchllm", "lpm", "dfs-weight"}
    assert sorted(plan.order) == list(range(12)) and plan.release_steps is None
    plan.check_matches(ordered)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--choose", "nope"], "--choose 'nope' is not among the policies planned"),
        (["--pilot-results", "x.jsonl"], "--pilot-results goes with --pilot"),
    ],
)
def test_plan_batch_errors(
    batch: Path, model_dir: str, args: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(batch, model_dir, *args) == 2
    assert match in capsys.readouterr().err
    assert not batch.with_name("ordered.jsonl").exists()


def test_outputs_never_overwrite_the_batch(
    batch: Path, model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = batch.read_bytes()
    plan = ["plan-batch", str(batch), "-o", str(batch), "--gpu", "a100-80g", "--model-dir", model_dir]
    run = ["run-batch", str(batch), "-o", str(batch), "--model-dir", model_dir, "--no-plan"]
    for argv in (plan, run):
        assert main(argv) == 2
        assert "is also an input of this command" in capsys.readouterr().err
    assert batch.read_bytes() == before


def test_plan_batch_needs_a_profile(batch: Path, model_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan-batch", str(batch), "-o", str(batch.with_name("o.jsonl")), "--model-dir", model_dir]
    assert main(argv) == 2 and "--profile FILE" in capsys.readouterr().err


def test_run_batch_checks_its_plan_first(
    batch: Path, model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(batch, model_dir) == 0
    ordered = batch.with_name("ordered.jsonl")
    argv = ["run-batch", str(ordered), "-o", str(batch.with_name("r.jsonl")), "--model-dir", model_dir]
    assert main([*argv, "--token-budget", "4096"]) == 2
    assert "--token-budget 4096: the plan was made for 2048" in capsys.readouterr().err
    ordered.write_text(ordered.read_text() + "\n" + ordered.read_text().splitlines()[0] + "\n")
    assert main(argv) == 2 and "is not the file its plan was made for" in capsys.readouterr().err
    assert not batch.with_name("r.jsonl").exists()


def test_pilot_estimates_the_rest_from_its_sample(batch: Path, model_dir: str, tmp_path: Path) -> None:
    trace = import_trace(str(batch), "openai", ImportOptions(model_dir=model_dir, block_size=4))
    # a finished pilot: every request "ran" with 3 tokens (only the sampled ones are read)
    results = [
        {
            "id": "x",
            "custom_id": c,
            "response": {"status_code": 200, "body": {"usage": {"completion_tokens": 3}}},
            "error": None,
        }
        for c in trace.custom_id.tolist()
    ]
    given = write_jsonl(tmp_path / "pilot-results.jsonl", results)
    config = VllmRunConfig(model_dir)
    out = pilot_lengths(
        str(batch), trace, 0.2, str(tmp_path / "o.jsonl"), config, lambda _m: None, reuse=str(given)
    )
    assert out.output_len.tolist() == [3] * 12  # the samples' mean, everywhere (within each max_tokens)
    assert (
        out.metadata["output_lengths"]["source"] == "pilot" and out.metadata["output_lengths"]["sampled"] >= 2
    )
