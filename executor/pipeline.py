"""Plan, simulate, replay, compare: the one loop ``execute`` and ``validate`` run, per policy.

For each policy: plan the trace, simulate the plan under the engine configuration of the engine
replayed (:func:`blendsim.sim.simulation.run.simulate`; written to ``OUT/sim/<backend>/``), replay
the simulation on a backend and compare what it measured with what was simulated
(:class:`~blendsim.executor.compare.ComparisonEntry`). A backend is anything with a ``name`` and a
``replay(sim, profile, out)``: :class:`VllmReplay` runs the simulated admission order and pacing on
vLLM, :class:`TorchReplay` the simulated steps on torch kernels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from blendsim.executor.compare import ComparisonEntry, entry_from_replay, entry_from_results
from blendsim.executor.vllm_engine import VllmRunConfig
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.profile import Profile
from blendsim.sim.planning.plan import Plan
from blendsim.sim.simulation.config import EngineConfig
from blendsim.sim.simulation.result import SimResult
from blendsim.traces.trace import Trace

Say = Callable[[str], None]


class Backend(Protocol):
    @property
    def name(self) -> str: ...

    def replay(self, sim: SimResult, profile: Profile, out: Path) -> ComparisonEntry: ...


@dataclass(frozen=True)
class VllmReplay:
    """The simulation's admission order and step pacing on vLLM, one engine per process (and per
    replica), writing under ``OUT/vllm/``."""

    trace: Trace
    trace_path: Path
    config: VllmRunConfig
    python: str | None = None
    max_steps: int | None = None
    seed: int = 0
    name: str = "vllm"

    def replay(self, sim: SimResult, profile: Profile, out: Path) -> ComparisonEntry:
        from blendsim.executor.data_parallel import replay_on_vllm

        measured = replay_on_vllm(
            self.trace,
            self.trace_path,
            sim,
            self.config,
            out / "vllm",
            max_steps=self.max_steps,
            python=self.python,
            seed=self.seed,
        )
        return entry_from_results(sim, measured)


@dataclass(frozen=True)
class TorchReplay:
    """The simulation's recorded steps on torch kernels (:mod:`blendsim.executor.torch_backend`),
    under the simulated composition (an overlapped simulation as two nano-batches on two cores),
    writing under ``OUT/torch/``. ``reference_threads``: also time the same steps serially on that
    many torch threads, measured only (so an overlap measured is overlap, not a second core)."""

    model: ModelSpec
    device: str = "cpu"
    max_steps: int | None = None
    select: str = "first"
    threads: int | None = None
    seed: int = 0
    reference_threads: int | None = None
    name: str = "torch"

    def replay(self, sim: SimResult, profile: Profile, out: Path) -> ComparisonEntry:
        from blendsim.executor.torch_backend import ReplayOptions, replay_steps

        opts = ReplayOptions(self.device, self.max_steps, self.select, threads=self.threads, seed=self.seed)
        replay = replay_steps(sim, self.model, profile, opts)
        replay.write(out / "torch")
        entry = entry_from_replay(replay)
        if self.reference_threads and not replay.interrupted:
            ref_opts = dataclasses.replace(opts, threads=self.reference_threads)
            ref = replay_steps(sim, self.model, profile, ref_opts, engine="serial")
            entry.extra["serial_reference"] = {
                "threads": self.reference_threads,
                "measured_tok_s": ref.tokens / ref.measured_makespan_s if ref.measured_makespan_s else None,
            }
        return entry


def compare_policies(
    trace: Trace,
    policies: Sequence[str],
    model: ModelSpec,
    profile: Profile,
    config: EngineConfig,
    backend: Backend,
    out: Path,
    *,
    dp: int = 1,
    seed: int = 0,
    say: Say | None = None,
    also: Callable[[Plan, SimResult, ComparisonEntry], None] | None = None,
) -> list[ComparisonEntry]:
    """Plan, simulate (on ``profile``, bound to ``model``), replay and compare each policy (module
    docstring); ``also`` sees each policy's plan, simulation and entry (extra comparisons). Stops
    after a replay that was interrupted, keeping what it measured."""
    from blendsim.sim.planning.planner import make_plan
    from blendsim.sim.planning.policies.auto import RankingRun
    from blendsim.sim.simulation.run import simulate

    log = say or (lambda _m: None)
    entries = []
    for policy in policies:
        ranking: dict[str, Any] = {"run": RankingRun(profile, config, dp)} if policy == "auto" else {}
        plan = make_plan(trace, policy, model, profile.hardware, seed=seed, **ranking)
        sim = simulate(trace, plan, model, profile, config, dp)
        sim.write(out / "sim" / backend.name)
        where = f"{backend.name}" + (f", {dp} replicas" if dp > 1 else "")
        log(f"{policy}: simulated {sim.throughput_tok_s:,.0f} tok/s; replaying on {where}")
        entry = backend.replay(sim, profile, out)
        if policy == "auto":  # which order it replayed (executor/auto_pick.py)
            entry.extra["auto_chosen"] = plan.stats["auto"]["chosen"]
        if also is not None:
            also(plan, sim, entry)
        entries.append(entry)
        mape = entry.extra.get("step_mape")
        log(
            f"{policy}: measured {entry.measured_tok_s:,.0f} tok/s, error {entry.error:+.1%}"
            + (f", step MAPE {mape:.1%}" if mape is not None else "")
        )
        if entry.extra.get("interrupted"):
            log("interrupted: comparing what was measured")
            break
    return entries
