"""Mix sources into one trace that hits a target density and sharing (blendserve.md §6.2–6.4).

``make_trace`` draws every source once (prefix-stable streams), solves the request counts jointly
(:mod:`blendsim.traces.solve`) on the exact totals of those draws, and assembles the trace from the
first ``n_i`` requests of each source. The achieved density and sharing stored in the metadata are
measured on the assembled trace itself. If no count vector is within tolerance (±3 % density,
±0.02 sharing) the draw is refined with fresh streams and solved again; an unreachable target is a
UserError naming the feasible range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from blendsim import __version__
from blendsim.errors import UserError, unknown
from blendsim.profiler.cost import set_density
from blendsim.profiler.gpus import HardwareSpec, get_gpu
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.traces.assemble import assemble
from blendsim.traces.solve import DENSITY_TOL, SHARING_TOL, feasible_band, solve_counts
from blendsim.traces.sources import Source, get_source
from blendsim.traces.streams import SourceStream, density_factor
from blendsim.traces.trace import Trace

ARRIVALS = ("batched", "interleaved")
ATTEMPTS = 6  # fresh draws tried before giving up
GOOD_ENOUGH = 0.34  # stop refining once within a third of the tolerance


@dataclass(frozen=True)
class Preset:
    """A named workload: the paper's Table 2 (BlendServe, arXiv 2411.16102)."""

    mix: tuple[str, ...]
    density: float
    sharing: float
    requests: int
    description: str


_TABLE2 = ("burstgpt", "mmlu", "openvid")
PRESETS: dict[str, Preset] = {
    "trace1": Preset(_TABLE2, 1.4, 0.35, 40_000, "compute-intensive, high sharing (paper Table 2)"),
    "trace2": Preset(_TABLE2, 0.9, 0.35, 40_000, "memory-intensive, high sharing (paper Table 2)"),
    "trace3": Preset(_TABLE2, 1.4, 0.05, 40_000, "compute-intensive, low sharing (paper Table 2)"),
    "trace4": Preset(_TABLE2, 0.9, 0.05, 40_000, "memory-intensive, low sharing (paper Table 2)"),
}

Progress = Callable[[str], None]


def _resolve(model: str | ModelSpec, gpu: str | HardwareSpec) -> tuple[ModelSpec, HardwareSpec]:
    return (
        get_model(model) if isinstance(model, str) else model,
        get_gpu(gpu) if isinstance(gpu, str) else gpu,
    )


def _sources(mix: Sequence[str], lengths_from: str | None) -> list[Source]:
    names = list(mix)
    if not names:
        raise UserError("--mix is empty; give one or more sources")
    if len(set(names)) != len(names):
        raise UserError(f"--mix names a source twice: {','.join(names)}")
    sources = [get_source(name) for name in names]
    if lengths_from is None:
        return sources
    from blendsim.traces.sources.replay import with_lengths_from

    return with_lengths_from(sources, lengths_from)


def _check_targets(density: float, sharing: float, requests: int) -> None:
    if not requests > 0:
        raise UserError(f"--requests must be a positive integer, got {requests}")
    if not (np.isfinite(density) and density > 0):
        raise UserError(f"--density must be a positive number, got {density}")
    if not 0 <= sharing < 1:
        raise UserError(f"--sharing must be in [0, 1), got {sharing}")


def _infeasible(
    streams: list[SourceStream],
    names: str,
    density: float,
    sharing: float,
    factor: float,
    requests: int,
    found: tuple[float, float] | None = None,
) -> UserError:
    # the sharing target counts as met anywhere within its tolerance, so is its feasibility
    (s_lo, s_hi), rho_range = feasible_band(streams, sharing, factor, reference=requests)
    where = f"mix {names} with {requests} requests"
    if rho_range is None:
        return UserError(
            f"sharing {sharing} is infeasible for {where}: feasible sharing is {s_lo:.3f}–{s_hi:.3f} "
            f"(±{SHARING_TOL} tolerance)"
        )
    lo, hi = rho_range
    feasible = f"feasible density at that sharing is {lo:.3g}–{hi:.3g} (sharing {s_lo:.3f}–{s_hi:.3f})"
    if found is None:
        return UserError(f"density {density} at sharing {sharing} is infeasible for {where}: {feasible}")
    return UserError(
        f"density {density} at sharing {sharing} is not reachable within ±{DENSITY_TOL:.0%} and "
        f"±{SHARING_TOL} for {where} (closest: density {found[0]:.3g}, sharing {found[1]:.3f}); "
        f"{feasible} with enough requests: use more --requests"
    )


def make_trace(
    mix: Sequence[str],
    density: float,
    sharing: float,
    requests: int,
    model: str | ModelSpec = "llama-3-8b",
    gpu: str | HardwareSpec = "a100-80g",
    seed: int = 0,
    arrival: str = "batched",
    lengths_from: str | None = None,
    progress: Progress | None = None,
) -> Trace:
    """A trace of ``requests`` requests from ``mix`` at ``density`` ±3 % and ``sharing`` ±0.02.

    Density and sharing are measured at the GPU's datasheet peaks for ``model`` (design.md).
    Same arguments, same trace. ``arrival``: ``batched`` (each source one batch, in ``mix`` order,
    shuffled within) or ``interleaved`` (all shuffled together); request_id = arrival position.
    """
    say = progress or (lambda _msg: None)
    if arrival not in ARRIVALS:
        raise unknown("arrival order", arrival, ARRIVALS)
    _check_targets(density, sharing, requests)
    model_spec, gpu_spec = _resolve(model, gpu)
    sources = _sources(mix, lengths_from)
    names = ",".join(s.name for s in sources)
    if requests < len(sources):
        raise UserError(f"--requests {requests} is fewer than the {len(sources)} sources in --mix {names}")
    factor = density_factor(model_spec, gpu_spec)
    best = None
    for attempt in range(ATTEMPTS):
        say(f"drawing {names} (attempt {attempt + 1})")
        draw_seed = seed if attempt == 0 else seed + 7919 * attempt
        streams = [SourceStream(s, draw_seed, requests) for s in sources]
        if attempt == 0:
            _, rho_range = feasible_band(streams, sharing, factor, reference=requests)
            if rho_range is None or not rho_range[0] * (1 - DENSITY_TOL) <= density <= rho_range[1] * (
                1 + DENSITY_TOL
            ):
                raise _infeasible(streams, names, density, sharing, factor, requests)
        say(f"solving counts for density {density}, sharing {sharing}")
        counts, offsets, rho, s, err = solve_counts(streams, requests, density, sharing, factor)
        if best is None or err < best[5]:
            best = (streams, counts, offsets, rho, s, err)
        if err <= GOOD_ENOUGH:
            break
    assert best is not None
    streams, counts, offsets, rho, s, err = best
    if err > 1.0:
        raise _infeasible(streams, names, density, sharing, factor, requests, found=(rho, s))
    say("assembling " + ", ".join(f"{src.name} {n}" for src, n in zip(sources, counts, strict=True)))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xA77])))
    trace = assemble(
        [st.block.window(int(o), int(n)) for st, o, n in zip(streams, offsets, counts, strict=True)],
        [src.name for src in sources],
        arrival,
        rng,
    )
    measured_sharing = trace.sharing()
    measured_density = set_density(
        trace.prompt_len, trace.output_len, model_spec, gpu_spec, trace.saved_tokens()
    )
    trace.metadata = {
        "generator": f"blendsim {__version__}",
        "seed": seed,
        "sources": [src.name for src in sources],
        "counts": {src.name: int(n) for src, n in zip(sources, counts, strict=True)},
        # each source's requests are draw positions [offset, offset + count) of its seeded stream
        "draw": {
            "seed": int(streams[0].seed),
            "offsets": {src.name: int(o) for src, o in zip(sources, offsets, strict=True)},
        },
        "targets": {"density": density, "sharing": sharing, "requests": requests},
        "model": model_spec.name,
        "gpu": gpu_spec.name,
        "achieved": {"density": measured_density, "sharing": measured_sharing},
        "arrival": arrival,
        "lengths_from": lengths_from,
        "tolerance": {"density_rel": DENSITY_TOL, "sharing_abs": SHARING_TOL},
    }
    return trace


def make_preset(
    name: str,
    requests: int | None = None,
    model: str | ModelSpec = "llama-3-8b",
    gpu: str | HardwareSpec = "a100-80g",
    seed: int = 0,
    arrival: str = "batched",
    progress: Progress | None = None,
) -> Trace:
    """One of the paper's Table 2 workloads (``trace1`` .. ``trace4``), 40,000 requests by default."""
    if name not in PRESETS:
        raise unknown("preset", name, list(PRESETS))
    p = PRESETS[name]
    trace = make_trace(
        p.mix,
        p.density,
        p.sharing,
        p.requests if requests is None else requests,
        model,
        gpu,
        seed=seed,
        arrival=arrival,
        progress=progress,
    )
    trace.metadata["preset"] = name
    return trace
