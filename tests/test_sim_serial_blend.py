"""blend on the serial engine (``blend_admission`` step 5): a step costs compute plus memory, so the
rule saves steps instead of pacing for overlap. Pinned on a hand-made two-unit case (long prompts
with short outputs, and 50 long outputs) on a serial engine with a tight cache, where the memory
work, not the longest output, sets how many steps a run needs: the serial rule reads more KV per
step and so runs fewer steps than the overlap engine's rule on the same engine, and the longest
requests still start at once."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from test_sim_projected_peak import A100, LLAMA, two_unit_case

from blendsim.sim.simulation.blend_admission import BlendAdmission
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.engine import Engine
from blendsim.sim.simulation.sides import RIGHT

KV_TOKENS = 120_000  # tight: the case's decode KV reads over this exceed its longest output


@lru_cache(maxsize=2)
def run(rule: str) -> tuple[Engine, BlendAdmission]:
    """The case on a serial engine, admitted by blend's rule for the engine kind ``rule``."""
    trace, plan = two_unit_case()
    engine_cfg = EngineConfig(engine="serial", kv_capacity_override=KV_TOKENS)
    blocks = KV_TOKENS // engine_cfg.block_size
    engine = Engine(trace, plan.est_output_len, A100, engine_cfg, blocks)
    adm = BlendAdmission(
        plan, LLAMA, A100.hardware, engine_cfg.with_(engine=rule), blocks, A100.steps.ridge_tokens()
    )
    while True:
        adm.admit(engine)
        if engine.idle and adm.exhausted:
            break
        engine.step()
    assert engine.stats.finished == len(trace)
    return engine, adm


def steps_of(engine: Engine) -> dict[str, np.ndarray]:
    return engine.record.columns(0, engine.bs)["steps"]


def test_serial_rule_reads_more_kv_per_step_and_runs_fewer_steps() -> None:
    serial, s_adm = run("serial")
    overlap, o_adm = run("overlap")
    assert s_adm.serial and s_adm.request_credit and not o_adm.serial
    longest = int(two_unit_case()[0].output_len.max())
    assert overlap.step_index > 1.1 * longest  # the memory work, not the longest output, binds
    assert serial.step_index < overlap.step_index
    assert serial.now < overlap.now
    # the same KV is read either way (same requests, exact estimates): fewer steps read more each
    kv_per_step = [steps_of(e)["decode_kv_tokens"].sum() / (e.step_index - 1) for e in (serial, overlap)]
    assert kv_per_step[0] > kv_per_step[1]
    assert serial.stats.preemptions == 0


def test_serial_right_spacing_keeps_the_longest_requests_first() -> None:
    """The per-request credit spaces the right stream, but a request that would end after the work
    left needs is admitted at once: the longest output starts in the first steps, and every right
    request is admitted."""
    engine, _ = run("serial")
    trace, _ = two_unit_case()
    admission = engine.record.columns(0, engine.bs)["admission"]
    right = admission["side"] == RIGHT
    longest = int(np.argmax(trace.output_len))
    first = admission["step"][admission["position"] == longest]
    assert right.sum() == 50 and int(first[0]) <= 2
