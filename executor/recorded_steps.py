"""A simulation's recorded steps as a replay needs them: which to replay, each one's exact shape, and
what the profile predicts for it, operator by operator.

Every row of ``SimResult.steps`` (:mod:`blendsim.sim.simulation.record`) holds the step's
``BatchShape`` (prefill tokens, attention pairs and chunks, decodes and their KV read) and the
simulator's time for it, so nothing needs re-simulating or matching up: row ``k`` is one step.
"""

from __future__ import annotations

import numpy as np

from blendsim.profiler.cost import BatchShape
from blendsim.profiler.profile import Profile
from blendsim.sim.simulation.result import SimResult

SELECTIONS = ("first", "even")
PREDICTED = (
    "pred_compute_s",
    "pred_memory_s",
    "pred_overhead_s",
    "pred_step_s",
    "pred_gemm_s",
    "pred_lm_head_s",
    "pred_prefill_attn_s",
    "pred_decode_attn_s",
)


def step_shape(steps: dict[str, np.ndarray], row: int) -> BatchShape:
    """The exact shape the simulator priced step ``row`` with."""
    return BatchShape(
        int(steps["prefill_tokens"][row]),
        float(steps["prefill_attn_pairs"][row]),
        int(steps["decode_tokens"][row]),
        int(steps["decode_kv_tokens"][row]),
        int(steps["prefill_seqs"][row]),
    )


def select_rows(steps: dict[str, np.ndarray], max_steps: int | None, select: str) -> np.ndarray:
    """Rows to replay, replica by replica, in step order: all, or ``max_steps`` per replica, the
    first ones (``select="first"``) or spread evenly over its run (``"even"``)."""
    replica = np.asarray(steps["replica"])
    out = []
    for r in np.unique(replica):
        rows = np.flatnonzero(replica == r)
        if max_steps is not None and len(rows) > max_steps:
            if select == "first":
                rows = rows[:max_steps]
            else:
                rows = rows[np.unique(np.linspace(0, len(rows) - 1, max_steps).round().astype(np.int64))]
        out.append(rows)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def predicted(sim: SimResult, rows: np.ndarray, profile: Profile) -> dict[str, np.ndarray]:
    """Per selected row: the step's predicted time split as the composition saw it (compute, memory,
    overhead, total: the simulator's) and per operator (GEMM, LM head, prefill and decode
    attention), from the bound ``profile`` the simulation ran on."""
    sm = profile.steps
    cols: dict[str, list[float]] = {k: [] for k in PREDICTED}
    for row in rows.tolist():
        shape = step_shape(sim.steps, row)
        st = profile.step_time(shape, sim.engine)
        seqs = shape.decode_seqs + shape.prefill_seqs
        values = (
            st.compute_s,
            st.memory_s,
            st.overhead_s,
            st.total_s,
            sm.gemm_time(shape.gemm_tokens),
            sm.lm_head_time(seqs),
            sm.prefill_attn_time(shape.prefill_attn_pairs, shape.prefill_tokens, shape.prefill_seqs),
            sm.decode_attn_time(shape.decode_kv_tokens, shape.prefill_tokens),
        )
        for k, v in zip(PREDICTED, values, strict=True):
            cols[k].append(v)
    return {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
