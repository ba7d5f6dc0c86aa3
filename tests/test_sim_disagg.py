"""Prefill/decode disaggregation (sim/simulation/disagg.py): KV conservation across the transfer,
capacity on both sides with KV in flight, the transfer's cost, the 1P1D bound, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pytest
import simpy

from blendsim.cli import main
from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.gpus import GPUS
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.disagg import DisaggregatedRun, Transfer
from blendsim.sim.simulation.layout import DisaggConfig, kv_link, parse_layout
from blendsim.sim.simulation.record import DECODE, PREFILL
from blendsim.sim.simulation.result import SimResult
from blendsim.sim.simulation.run import simulate, simulate_policy
from blendsim.traces.io import write_trace
from blendsim.traces.mixer import make_preset
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)
KV = LLAMA.kv_bytes_per_token
BLOCK = 16


def lengths_trace(n: int, prompts: tuple[int, int], outputs: tuple[int, int], seed: int = 0) -> Trace:
    """``n`` requests with private prompts (no shared prefix), lengths uniform in the ranges."""
    rng = np.random.default_rng(seed)
    return Trace.from_requests(
        [
            Request(i, "toy", (i,), (int(rng.integers(*prompts)),), int(rng.integers(*outputs)))
            for i in range(n)
        ]
    )


def in_order(trace: Trace) -> Plan:
    n, one = len(trace), np.zeros(1)
    return Plan("fifo", np.arange(n), np.array([0, n]), one, one, one, one, trace.output_len.copy())


def run(trace: Trace, layout: DisaggConfig, **config: object) -> SimResult:
    return simulate(trace, in_order(trace), LLAMA, A100, EngineConfig(**config), disagg=layout)  # type: ignore[arg-type]


def starts(result: SimResult) -> np.ndarray:
    """Each step's start time (the record keeps its end and length)."""
    return np.asarray(result.steps["time"] - result.steps["step_s"])


@pytest.fixture(scope="module")
def tight() -> tuple[Trace, SimResult]:
    """2P2D on a cache small enough that KV waits on the prefill side, decode replicas preempt,
    and (some outputs of 1) requests finish on their prefill replica."""
    trace = lengths_trace(400, (200, 3000), (1, 1500), seed=3)
    return trace, run(trace, DisaggConfig(2, 2), block_size=BLOCK, kv_capacity_override=40_000)


def test_every_request_moves_its_whole_kv_once(tight: tuple[Trace, SimResult]) -> None:
    trace, res = tight
    t = res.transfers
    moved = trace.output_len > 1
    assert sorted(t["position"].tolist()) == np.flatnonzero(moved).tolist()  # once each; 1-token ones stay
    assert np.array_equal(t["tokens"], trace.prompt_len[t["position"]])
    assert np.array_equal(t["bytes"], t["tokens"] * KV)
    assert set(t["prefill_replica"].tolist()) <= {0, 1} and set(t["decode_replica"].tolist()) <= {2, 3}
    assert np.all(t["ready_s"] <= t["accepted_s"]) and np.all(t["accepted_s"] <= t["start_s"])
    assert np.all(t["start_s"] < t["end_s"])
    # the KV left the prefill side: its replicas prefilled every prompt and decoded nothing; all
    # decoding happened on the decode side after the KV landed
    steps = res.steps
    prefill, decode = steps["role"] == PREFILL, steps["role"] == DECODE
    assert steps["decode_tokens"][prefill].sum() == 0
    assert res.extra["prefill_completions"] + steps["decode_tokens"].sum() == trace.output_len.sum()
    first_decode = steps["time"][decode][steps["decode_tokens"][decode] > 0].min()
    assert first_decode > t["end_s"].min()
    assert res.extra["disagg"]["transfer_bytes"] == int(trace.prompt_len[moved].sum()) * KV


def test_one_token_outputs_never_leave_their_prefill_replica() -> None:
    trace = lengths_trace(30, (100, 900), (1, 2))
    res = run(trace, DisaggConfig(2, 1))
    assert len(res.transfers["position"]) == 0 and res.extra["disagg"]["transfers"] == 0
    assert np.all(res.steps["role"] == PREFILL)  # the decode replica never stepped
    assert res.extra["disagg"]["longest_output_ready_s"] == 0.0


def test_capacity_holds_on_both_sides_with_kv_in_flight(tight: tuple[Trace, SimResult]) -> None:
    trace, res = tight
    cap = res.extra["kv_capacity_tokens"]
    steps, t = res.steps, res.transfers
    assert np.all(steps["kv_used_tokens"] <= cap)
    assert res.preemptions > 0  # the decode side ran out of room and recomputed
    waited = t["accepted_s"] > t["ready_s"]
    assert waited.any()  # KV waited on the prefill side for decode room
    # at each step's start a replica holds at least the KV still waiting to leave it (prefill) or
    # in flight to it (decode); prompts are private here, so that KV is each prompt's own blocks
    held = -(-trace.prompt_len[t["position"]] // BLOCK) * BLOCK
    begin = starts(res)
    eps = 1e-9
    counted = 0
    for i in np.flatnonzero(steps["role"] == PREFILL):
        mine = (t["prefill_replica"] == steps["replica"][i]) & (t["ready_s"] <= begin[i] - eps)
        waiting = mine & (t["end_s"] > begin[i] + eps)
        assert steps["kv_used_tokens"][i] >= held[waiting].sum()
        counted += int(waiting.any())
    for i in np.flatnonzero(steps["role"] == DECODE):
        coming = (t["decode_replica"] == steps["replica"][i]) & (t["accepted_s"] <= begin[i] - eps)
        in_flight = coming & (t["end_s"] > begin[i] + eps)
        assert steps["kv_used_tokens"][i] >= held[in_flight].sum()
    assert counted > 0


def test_accept_and_landing_never_overfill(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked at every event, not only at steps: after each placement on a decode replica and each
    landing (its release on the prefill replica), every replica's used blocks stay within its
    capacity. The driver's handlers are wrapped: the engines themselves are compiled."""
    place, move = DisaggregatedRun._place, DisaggregatedRun._move
    seen = {"placed": 0, "landed": 0}

    def within(run: DisaggregatedRun) -> None:
        for engine in [*run.prefill, *run.decode]:
            assert engine.blocks.used_blocks <= engine.blocks.capacity

    def checked_place(self: DisaggregatedRun, pos: int) -> int | None:
        j = place(self, pos)
        within(self)
        seen["placed"] += j is not None
        return j

    def checked_move(
        self: DisaggregatedRun, transfer: Transfer, j: int
    ) -> Generator[simpy.Event, None, None]:
        yield from move(self, transfer, j)
        within(self)
        seen["landed"] += 1

    monkeypatch.setattr(DisaggregatedRun, "_place", checked_place)
    monkeypatch.setattr(DisaggregatedRun, "_move", checked_move)
    trace = lengths_trace(150, (200, 3000), (2, 900), seed=5)
    run(trace, DisaggConfig(1, 2), block_size=BLOCK, kv_capacity_override=30_000)
    assert seen["placed"] == seen["landed"] == 150


def test_transfer_cost_has_a_known_answer() -> None:
    """One request of 1,000 prompt tokens over the A100's PCIe 4.0 link: 131,072,000 bytes of KV
    (1,000 x 128 KiB) at 32 GB/s plus 5 us = 4.101 ms; the run is its prefill step, the transfer
    and its 9 decode steps back to back."""
    a100 = GPUS["a100-80g"]
    link = kv_link(a100, DisaggConfig(link="pcie"))
    assert link.seconds(1000 * KV) == pytest.approx(5e-6 + 131_072_000 / 32e9, rel=1e-12)
    assert kv_link(a100, DisaggConfig()).bandwidth == 300e9  # NVLink 3: 600 GB/s both ways
    assert kv_link(a100.with_tp(2), DisaggConfig(link="pcie")).bandwidth == 64e9  # two GPUs' links
    custom = kv_link(a100, DisaggConfig(link_bandwidth=25e9, link_latency_s=1e-3))
    assert custom.seconds(25e9) == pytest.approx(1.001)
    assert kv_link(a100, DisaggConfig(link="ideal")).seconds(1e12) == 0.0

    trace = Trace.from_requests([Request(0, "toy", (0,), (1000,), 10)])
    res = run(trace, DisaggConfig(link="pcie"), engine="serial")
    t = res.transfers
    assert t["end_s"][0] - t["start_s"][0] == pytest.approx(0.004101, rel=1e-9)
    prefill = A100.step_time(BatchShape(1000, 1000 * 1001 / 2, 0, 0, 1), "serial").total_s
    decode = sum(A100.step_time(BatchShape(0, 0.0, 1, 1000 + i, 0), "serial").total_s for i in range(1, 10))
    assert t["ready_s"][0] == pytest.approx(prefill, rel=1e-12)
    assert res.makespan_s == pytest.approx(prefill + 0.004101 + decode, rel=1e-12)


@pytest.mark.parametrize(
    ("prompts", "outputs"),
    [((2000, 6000), (2, 6)), ((50, 200), (1500, 2500)), ((100, 3000), (2, 800))],
    ids=["prefill-bound", "decode-bound", "mixed"],
)
@pytest.mark.parametrize("engine", ["serial", "overlap"])
def test_1p1d_with_a_free_link_and_no_capacity_limit_meets_its_bound(
    prompts: tuple[int, int], outputs: tuple[int, int], engine: str
) -> None:
    """makespan >= max(prefill replica's total step time + the last prompt's own decode, first
    arrival + decode replica's total step time): the prefill replica is never idle before its last
    prompt (nothing else limits it), which then still decodes at least alone; the decode replica
    cannot start before its first request lands. With nothing else in the way, within 1 %."""
    trace = lengths_trace(300, prompts, outputs)
    res = run(trace, DisaggConfig(link="ideal"), engine=engine, kv_capacity_override=10**9)
    steps, t = res.steps, res.transfers
    prefill_s = steps["step_s"][steps["role"] == PREFILL].sum()
    decode_s = steps["step_s"][steps["role"] == DECODE].sum()
    last = int(t["position"][np.argmax(t["ready_s"])])
    p, d = int(trace.prompt_len[last]), int(trace.output_len[last])
    own = sum(A100.step_time(BatchShape(0, 0.0, 1, p + i, 0), engine).total_s for i in range(1, d))
    bound = max(prefill_s + own, t["end_s"].min() + decode_s)
    assert bound * (1 - 1e-9) <= res.makespan_s <= 1.01 * bound


def test_one_prefill_replica_keeps_the_colocated_sharing() -> None:
    """DFS order on one prefill replica with room to spare hits its prefix cache exactly as a
    colocated replica does; the result says which layout ran and its per-GPU throughput."""
    trace = make_preset("trace1", requests=1500, seed=0)
    config = EngineConfig(engine="serial")
    colocated = simulate_policy(trace, "dfs", LLAMA, A100, config)
    split = simulate_policy(trace, "dfs", LLAMA, A100, config, disagg=DisaggConfig(1, 2))
    assert split.sharing == pytest.approx(colocated.sharing)
    d = split.to_dict()
    assert d["layout"] == "1P2D" and d["gpus"] == 3 and colocated.to_dict()["layout"] == "colocated"
    assert d["throughput_per_gpu_tok_s"] == pytest.approx(d["throughput_tok_s"] / 3)
    roles = d["breakdown"]["roles"]
    assert roles["prefill"]["replicas"] == 1 and roles["decode"]["replicas"] == 2
    assert roles["prefill"]["bandwidth_utilization"] < roles["decode"]["bandwidth_utilization"]
    assert roles["prefill"]["flop_utilization"] > roles["decode"]["flop_utilization"]


def test_layout_parsing_and_library_errors() -> None:
    assert (
        parse_layout("1x2") == (1, 2) and parse_layout("2P1D") == (2, 1) and parse_layout("10x3") == (10, 3)
    )
    for bad in ("0x1", "1x0", "1x", "x2", "1x2x3", "-1x2", "1.5x2", "1 x 2", "", "1P2"):
        with pytest.raises(UserError):
            parse_layout(bad)
    trace = lengths_trace(20, (100, 200), (2, 10))
    with pytest.raises(UserError, match="both ends"):
        simulate_policy(trace, "blend", LLAMA, A100, disagg=DisaggConfig())
    with pytest.raises(UserError, match="data parallelism must be 1"):
        simulate(trace, in_order(trace), LLAMA, A100, dp=2, disagg=DisaggConfig())
    hw = dataclasses.replace(GPUS["a100-80g"], pcie_bandwidth=0.0)
    with pytest.raises(UserError, match="no pcie bandwidth"):
        kv_link(hw, DisaggConfig(link="pcie"))
    assert math.isinf(kv_link(hw, DisaggConfig(link="ideal")).bandwidth)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("disagg") / "t.parquet"
    write_trace(make_preset("trace2", requests=600, seed=0), path)
    return path


def test_cli_runs_a_layout_end_to_end(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["simulate", str(trace_file), "--disagg", "1x2", "--engine", "serial", "--kv-link", "pcie"]
    assert main([*argv, "--json", "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in rows] == [
        "fifo",
        "dfs",
        "balance",
        "dfs-tuned",
        "batchllm",
        "dfs-weight",
    ]  # `all` under --disagg: one-sided (not blend, two-sided; not lpm, engine-side)
    assert all(r["layout"] == "1P2D" and r["disagg"]["link"] == "pcie" and r["gpus"] == 3 for r in rows)
    assert (out / "dfs_serial_1P2D_transfers.parquet").exists() and (out / "dfs_serial_1P2D.json").exists()
    assert main([*argv, "--policy", "dfs"]) == 0
    table = capsys.readouterr().out
    assert "1P2D: 1 prefill + 2 decode replicas, KV over pcie (32 GB/s each way)" in table
    assert "tok/s/GPU" in table and "decode side" in table and "KV link:" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--disagg", "0x2"], "at least one prefill and one decode"),
        (["--disagg", "1x2x3"], "expected PxD"),
        (["--disagg", "1x2", "--dp", "2"], "exclude each other"),
        (["--kv-link", "pcie"], "give --disagg"),
        (["--disagg", "1x1", "--policy", "dfs,blend"], "both ends"),
        (["--disagg", "1x1", "--kv-link-bandwidth", "0"], "--kv-link-bandwidth must be finite and > 0"),
    ],
)
def test_cli_rejects_bad_layouts_leaving_nothing(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["simulate", str(trace_file), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
