"""What the figure scripts share: their scale (full, quick, tiny), traces and cached simulation runs.

A :class:`Run` names one simulation completely (trace recipe, policy, engine, model, GPU, TP, DP,
seed, options), so its result can be cached on disk under ``OUT/.cache/<hash>.json`` and shared by
every script of one ``blendsim figures`` call (fig7, fig9, table3 and the beyond-paper studies reuse
the same preset runs). Per-step series are never cached; scripts that need them ask for
``keep_steps`` and get them fresh.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from tqdm import tqdm

from blendsim import __version__
from blendsim.experiments.cells import resolve
from blendsim.experiments.runners import default_jobs, run_local
from blendsim.outputs import write_json
from blendsim.traces.trace import Trace

PRESETS = ("trace1", "trace2", "trace3", "trace4")
BASELINES = ("fifo", "dfs", "balance")
ALL_POLICIES = (*BASELINES, "blend")


@dataclass(frozen=True)
class FigureConfig:
    """How big the figures' workloads are. ``full`` is the paper's scale where this machine allows;
    ``quick`` finishes ``blendsim figures --quick`` within 15 minutes on 2 cores; ``tiny`` is for tests."""

    scale: str = "full"
    preset_requests: int | None = 400_000  # paper §6.2: main workloads hold >= 400,000 requests
    grid_requests: int = 40_000  # paper A.3: 40,000 requests per mixed workload
    grid_densities: str = "0.8:1.4:0.05"  # Figure 11 (blendserve.md §6.3)
    grid_sharings: str = "0.05:0.45:0.10"
    appendix_densities: str = "0.8:1.4:0.05"  # Figures 13-15
    appendix_sharings: str = "0.05:0.45:0.10"
    wildchat_sharings: str = "0.20:0.40:0.05"  # Figure 15: WildChat alone already shares 0.19
    fig12_presets: tuple[str, ...] = PRESETS
    study_presets: tuple[str, ...] = PRESETS  # table3 and gpu_profiles
    # robustness: blend's gain against the length estimator (experiments/robustness.py)
    robustness_presets: tuple[str, ...] = PRESETS
    robustness_seeds: int = 5  # seeds cfg.seed, cfg.seed + 1, ...: each a trace and a planning seed
    sample_rates: tuple[float, ...] = (0.001, 0.01, 0.1)  # the sampled estimator's; oracle = 100 %
    noise_levels: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # sigma on the default (1 %) estimate
    video_lengths: tuple[str, ...] = ("exact", "sampled")  # crossed with the sample rates
    noise_video_lengths: tuple[str, ...] = ("exact", "sampled")  # crossed with the noise levels
    model: str = "llama-3-8b"
    gpu: str = "a100-80g"
    seed: int = 0
    jobs: int = field(default_factory=default_jobs)
    progress: bool = True

    def with_(self, **changes: Any) -> FigureConfig:
        return replace(self, **changes)


SCALES = {
    "full": FigureConfig(),
    "quick": FigureConfig(
        scale="quick",
        preset_requests=40_000,
        grid_requests=20_000,
        grid_densities="0.8:1.4:0.1",
        grid_sharings="0.05:0.45:0.1",
        appendix_densities="0.8:1.4:0.3",
        appendix_sharings="0.05:0.45:0.2",
        wildchat_sharings="0.20:0.40:0.1",
        fig12_presets=("trace1", "trace2"),
        study_presets=("trace1", "trace4"),
        robustness_presets=("trace1", "trace4"),
        robustness_seeds=1,
        sample_rates=(0.01,),
        noise_levels=(0.5,),
        noise_video_lengths=("exact",),  # issue 15's two targets: videos sampled; noise 0.5
    ),
    "tiny": FigureConfig(
        scale="tiny",
        preset_requests=1000,
        grid_requests=1000,
        grid_densities="0.9,1.3",
        grid_sharings="0.05,0.35",
        appendix_densities="0.9,1.3",
        appendix_sharings="0.05,0.35",
        wildchat_sharings="0.25,0.35",
        robustness_presets=("trace1",),
        robustness_seeds=2,
        sample_rates=(0.01,),
        noise_levels=(0.5,),
        video_lengths=("exact",),
        noise_video_lengths=("sampled",),
        jobs=1,
        progress=False,
    ),
}


@dataclass(frozen=True)
class TraceRecipe:
    """A preset by name, or a mix at a target density and sharing. ``gpu``/``tp`` give the hardware
    whose datasheet peaks define the density (the mixer's contract)."""

    preset: str | None = None
    mix: tuple[str, ...] = ()
    density: float | None = None
    sharing: float | None = None
    requests: int | None = None
    model: str = "llama-3-8b"
    gpu: str = "a100-80g"
    tp: int = 1
    seed: int = 0

    @property
    def name(self) -> str:
        return self.preset or f"{'+'.join(self.mix)} ρ={self.density} s={self.sharing}"


@lru_cache(maxsize=6)
def build_trace(recipe: TraceRecipe) -> Trace:
    """The recipe's trace (cached per process: runs of one trace share one build)."""
    from blendsim.traces.mixer import make_preset, make_trace

    model, profile = resolve(recipe.model, recipe.gpu, None, recipe.tp)
    if recipe.preset:
        return make_preset(
            recipe.preset, requests=recipe.requests, model=model, gpu=profile.hardware, seed=recipe.seed
        )
    assert recipe.density is not None and recipe.sharing is not None and recipe.requests is not None
    return make_trace(
        list(recipe.mix),
        recipe.density,
        recipe.sharing,
        recipe.requests,
        model,
        profile.hardware,
        seed=recipe.seed,
    )


@dataclass(frozen=True)
class Run:
    """One simulation. ``gpu`` is the profile it runs on (may differ from the trace's), with
    ``profile_params`` (StepParams field, value) replacing its own (a sensitivity study's
    interference model); ``disagg`` is a disaggregated layout's (prefill, decode) replicas over
    NVLink (None: ``dp`` colocated)."""

    trace: TraceRecipe
    policy: str
    engine: str = "overlap"
    gpu: str = "a100-80g"
    tp: int = 1
    dp: int = 1
    seed: int = 0
    options: tuple[tuple[str, Any], ...] = ()
    keep_steps: bool = False
    disagg: tuple[int, int] | None = None
    profile_params: tuple[tuple[str, Any], ...] = ()

    def key(self) -> str:
        blob = json.dumps(
            {**asdict(replace(self, keep_steps=False)), "v": __version__}, sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def simulate_run(run: Run) -> dict[str, Any]:
    """``SimResult.to_dict()`` of the run, plus ``series`` (per-step columns) when asked. Options
    named like :class:`EstimationConfig`'s fields set the estimation; the rest go to the policy."""
    from blendsim.sim.planning.estimate import EstimationConfig
    from blendsim.sim.simulation.config import EngineConfig
    from blendsim.sim.simulation.layout import DisaggConfig
    from blendsim.sim.simulation.run import simulate_policy

    trace = build_trace(run.trace)
    model, profile = resolve(run.trace.model, run.gpu, None, run.tp)
    if run.profile_params:
        profile = replace(profile, params=replace(profile.params, **dict(run.profile_params)))
    config = EngineConfig(engine=run.engine)
    disagg = DisaggConfig(*run.disagg) if run.disagg else None
    options = dict(run.options)
    estimated = {f.name for f in fields(EstimationConfig)}
    estimation = EstimationConfig(**{k: options.pop(k) for k in list(options) if k in estimated})
    result = simulate_policy(
        trace,
        run.policy,
        model,
        profile,
        config,
        run.dp,
        run.seed,
        disagg=disagg,
        estimation=estimation,
        **options,
    )
    out = dict(result.to_dict())
    if run.keep_steps:
        out["series"] = step_columns(result.steps)
    return out


def step_columns(steps: dict[str, Any]) -> dict[str, list[float]]:
    """The per-step series of replica 0 as plain lists: step, time, compute, memory and step time."""
    keep = steps["replica"] == 0
    return {
        k: steps[k][keep].tolist()
        for k in ("step", "time", "compute_s", "memory_s", "step_s", "prefill_tokens", "decode_tokens")
    }


def run_all(
    runs: Sequence[Run], cfg: FigureConfig, cache_dir: Path | None, desc: str
) -> list[dict[str, Any]]:
    """Results of ``runs`` in order: cached ones from ``cache_dir``, the rest in ``cfg.jobs`` processes."""
    results: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, Run]] = []
    for i, run in enumerate(runs):
        path = cache_dir / f"{run.key()}.json" if cache_dir else None
        if path and path.exists() and not run.keep_steps:
            results[i] = json.loads(path.read_text())
        else:
            todo.append((i, run))
    bar = tqdm(
        total=len(todo),
        desc=desc,
        unit="run",
        disable=not cfg.progress or not todo,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    errors: list[BaseException] = []

    def done(task: tuple[int, Run], res: dict[str, Any]) -> None:
        i, run = task
        results[i] = res
        if cache_dir and not run.keep_steps:
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_json(cache_dir / f"{run.key()}.json", res, indent=1, sort_keys=True)
        bar.update(1)

    def failed(task: tuple[int, Run], exc: BaseException) -> None:
        bar.write(f"{task[1].trace.name}, {task[1].policy}: {type(exc).__name__}: {exc}")
        errors.append(exc)
        bar.update(1)

    try:
        run_local(
            _indexed, [(t,) for t in todo], cfg.jobs, lambda t, r: done(t[0], r), lambda t, e: failed(t[0], e)
        )
    finally:
        bar.close()
    if errors:  # a user error (e.g. an infeasible recipe) stays one line; anything else is a bug
        raise errors[0]
    return [results[i] for i in range(len(runs))]


def _indexed(task: tuple[int, Run]) -> dict[str, Any]:
    return simulate_run(task[1])


def preset_recipe(cfg: FigureConfig, preset: str, model: str | None = None, tp: int = 1) -> TraceRecipe:
    """A Table 2 preset at the config's size, synthesised for ``model`` on the config's GPU."""
    return TraceRecipe(
        preset=preset,
        requests=cfg.preset_requests,
        model=model or cfg.model,
        gpu=cfg.gpu,
        tp=tp,
        seed=cfg.seed,
    )


def preset_runs(
    cfg: FigureConfig,
    policies: Sequence[str] = ALL_POLICIES,
    engines: Sequence[str] = ("overlap",),
    presets: Sequence[str] = PRESETS,
    *,
    gpu: str | None = None,
    model: str | None = None,
    tp: int = 1,
    dp: int = 1,
    options: tuple[tuple[str, Any], ...] = (),
) -> list[Run]:
    """Every (preset, engine, policy), preset-major so one worker reuses one trace build."""
    return [
        Run(preset_recipe(cfg, p, model, tp), policy, engine, gpu or cfg.gpu, tp, dp, cfg.seed, options)
        for p in presets
        for engine in engines
        for policy in policies
    ]


def optimal_throughput(res: dict[str, Any]) -> float:
    """Tokens over the practical optimum's time T_o (blendserve.md §2.6)."""
    return float(res["total_tokens"]) / float(res["optimal_time_s"])


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def tagged(runs: Sequence[Run], results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results with the run's coordinates added: trace, model, gpu, tp, dp, layout, options."""
    rows = []
    for run, res in zip(runs, results, strict=True):
        row = {k: v for k, v in res.items() if k != "series"}
        row.update(
            trace=run.trace.name,
            model=run.trace.model,
            gpu=run.gpu,
            tp=run.tp,
            dp=run.dp,
            layout=res.get("layout", "colocated"),
            engine=res.get("engine", run.engine),
            policy=res.get("policy", run.policy),
            **{k: v for k, v in run.options},
            **{k: v for k, v in run.profile_params},
        )
        row["optimal_throughput_tok_s"] = optimal_throughput(res)
        rows.append(row)
    return rows


MATCH_KEYS = ("trace", "engine", "gpu", "dp", "model", "tp", "layout")


def add_speedups(rows: list[dict[str, Any]], extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``blend_speedup`` = blend's throughput / the row's, among rows equal on MATCH_KEYS + ``extra``."""
    keys = (*MATCH_KEYS, *extra)
    blend = {tuple(r.get(k) for k in keys): r["throughput_tok_s"] for r in rows if r["policy"] == "blend"}
    for r in rows:
        b = blend.get(tuple(r.get(k) for k in keys))
        r["blend_speedup"] = b / r["throughput_tok_s"] if b else None
    return rows


def binned(
    steps: dict[str, list[float]], columns: Sequence[str], bins: int = 400, by: str = "step"
) -> dict[str, Any]:
    """Means of ``columns`` over ``bins`` runs of consecutive steps of equal length in steps
    (``by="step"``) or in simulated time (``by="time"``; empty windows dropped): a long series plotted
    point by point is unreadable. Returns ``first_step``, ``last_step``, ``start_s``, ``end_s`` and
    one array per column."""
    import numpy as np

    n = len(steps["step"])
    if by == "time":
        t = np.asarray(steps["time"], dtype=float)
        edges = np.unique(np.searchsorted(t, np.linspace(t[0], t[-1], bins + 1)[1:-1]))
        edges = np.unique(np.concatenate([[0], edges, [n]]))
    else:
        edges = np.unique(np.linspace(0, n, min(bins, n) + 1).astype(int))
    out: dict[str, Any] = {
        "first_step": np.asarray(steps["step"])[edges[:-1]],
        "last_step": np.asarray(steps["step"])[edges[1:] - 1],
        "start_s": np.asarray(steps["time"])[edges[:-1]],
        "end_s": np.asarray(steps["time"])[edges[1:] - 1],
    }
    for c in columns:
        vals = np.asarray(steps[c], dtype=float)
        out[c] = np.add.reduceat(vals, edges[:-1]) / np.diff(edges)
    return out
