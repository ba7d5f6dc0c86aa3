"""The overlapping engine's step on real threads (profiler/overlap_step.py, overlap_replay.py): the
nano-batch split, the dependency order of the layer schedule, and that the two sides overlap."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.forward_pass import StepReplayer
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.overlap_step import AttentionWorker, Schedule, run_layers, split_nano_batches

two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPU cores")


def pairs(chunks: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> float:
    return sum(q * c + q * (q + 1) / 2 for q, c in chunks)


@pytest.mark.parametrize(
    ("decodes", "chunks"),
    [(64, []), (7, [(100, 0)]), (0, [(300, 50)]), (0, [(10, 0), (20, 5), (31, 0)]), (1, []), (3, [(1, 9)])],
)
def test_the_split_keeps_every_token_and_pair(decodes: int, chunks: list[tuple[int, int]]) -> None:
    parts = split_nano_batches(decodes, 40, chunks)
    assert sum(p.decodes for p in parts) == decodes
    assert sum(p.tokens for p in parts) == decodes + sum(q for q, _ in chunks)
    assert sum(pairs(p.chunks) for p in parts) == pytest.approx(pairs(chunks))
    assert all(p.tokens for p in parts) and len(parts) <= 2
    if decodes + sum(q for q, _ in chunks) >= 2:
        assert len(parts) == 2 and abs(parts[0].tokens - parts[1].tokens) <= 1


def recorded(
    layers: int, nano: int, worker: AttentionWorker | None
) -> list[tuple[str, int, int, float, float]]:
    """Run the schedule with sleeping work (which releases the GIL, as torch's kernels do) and
    return (kind, layer, nano-batch, start, end) for every piece of work."""
    log: list[tuple[str, int, int, float, float]] = []
    lock = threading.Lock()

    def make(kind: str, seconds: float):  # noqa: ANN202
        def factory(layer: int, i: int):  # noqa: ANN202
            def work() -> None:
                t0 = time.perf_counter()
                time.sleep(seconds)
                with lock:
                    log.append((kind, layer, i, t0, time.perf_counter()))

            return work

        return factory

    if worker is None:
        sched = Schedule(lambda fn: fn(), lambda fn: (fn(), None)[1], lambda _h: None)
    else:
        sched = Schedule(lambda fn: fn(), worker.submit, worker.wait)
    run_layers(layers, nano, make("qkv", 0.001), make("attn", 0.004), make("om", 0.004), sched)
    return log


def test_no_attention_before_its_qkv_and_no_om_before_its_attention() -> None:
    worker = AttentionWorker(None, time.perf_counter)
    try:
        log = recorded(6, 2, worker)
    finally:
        worker.close()
    when = {(k, layer, i): (t0, t1) for k, layer, i, t0, t1 in log}
    assert len(when) == 6 * 2 * 3  # every piece of work ran once
    for layer in range(6):
        for i in (0, 1):
            assert when["attn", layer, i][0] >= when["qkv", layer, i][1]
            assert when["om", layer, i][0] >= when["attn", layer, i][1]
            if layer:
                assert when["qkv", layer, i][0] >= when["om", layer - 1, i][1]
    # the two sides overlapped: attention ran while the other nano-batch's GEMMs did
    assert any(
        when["attn", 3, 0][0] < t1 and t0 < when["attn", 3, 0][1]
        for k, l3, _i, t0, t1 in log
        if k == "om" and l3 == 2
    )


def test_overlap_takes_less_than_the_serial_sum() -> None:
    worker = AttentionWorker(None, time.perf_counter)
    try:
        t0 = time.perf_counter()
        recorded(8, 2, worker)
        overlapped = time.perf_counter() - t0
    finally:
        worker.close()
    t0 = time.perf_counter()
    recorded(8, 1, None)  # one nano-batch: everything in order
    serial = (time.perf_counter() - t0) * 2  # two nano-batches' worth of work
    assert overlapped < 0.8 * serial


@two_cores
def test_cpu_overlapped_replay_runs_and_restores_the_thread(tiny: ModelSpec) -> None:
    torch.set_num_threads(1)
    before = os.sched_getaffinity(0)
    shapes = [BatchShape(40, 40 * 41 / 2, 6, 6 * 30, 1), BatchShape(decode_seqs=1, decode_kv_tokens=5)]
    replayer = StepReplayer(tiny, shapes, "cpu")
    try:
        for shape in shapes:
            t = replayer.run(shape, "overlap")
            assert t.step_s > 0 and t.wall_s == t.step_s and t.ops["head"] > 0
            assert t.ops["gemm_side"] > 0
    finally:
        replayer.close()
    assert os.sched_getaffinity(0) == before
