"""blend's closed-loop pacing (sim/simulation/work_left.py): an estimate that proves wrong costs a little."""

from __future__ import annotations

from blendsim.profiler.gpus import GPUS
from blendsim.profiler.models import MODELS
from blendsim.profiler.profile import builtin_profile
from blendsim.sim.planning.estimate import EstimationConfig
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.simulation.run import simulate
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

LLAMA = MODELS["llama-3-8b"]
A100 = builtin_profile("a100-80g").bind(LLAMA)
ORACLE = EstimationConfig("oracle")


def mixed_trace(video_outputs: list[int]) -> Trace:
    """300 long-prompt, short-output requests beside four long-output ones."""
    reqs = [Request(i, "burstgpt", (0, 1 + i), (20, 1500), 20) for i in range(300)]
    reqs += [Request(300 + j, "openvid", (1000, 2000 + j), (10, 100), d) for j, d in enumerate(video_outputs)]
    return Trace.from_requests(reqs)


def test_a_tenfold_memory_overestimate_does_not_throttle_the_compute_stream() -> None:
    true = mixed_trace([3000, 2000, 1500, 1000])
    # planned with every long output ten times too long: open loop, the planned memory work never
    # ran out and the compute stream stayed throttled to the ridge (9,284 steps, 91 s)
    wrong = make_plan(
        mixed_trace([30000, 20000, 15000, 10000]), "blend", LLAMA, GPUS["a100-80g"], estimation=ORACLE
    )
    run = simulate(true, wrong, LLAMA, A100)
    dfs = simulate(true, make_plan(true, "dfs", LLAMA, GPUS["a100-80g"]), LLAMA, A100)
    assert run.steps_run <= 1.15 * 3000
    assert run.makespan_s < dfs.makespan_s
