"""``blendsim plan TRACE --policy P``: build a policy's admission plan and summarise it.

TRACE is a trace file (read with :func:`blendsim.traces.io.read_trace`) or, when no such file exists,
a preset name (``trace1`` .. ``trace4``, generated with ``--requests``). ``--order-out FILE`` writes the
admission order as CSV: ``rank,request_id,position,unit,side``, where ``side`` is ``L`` for a unit
whose planning density is at least the target ρ(rt) (the left, compute-heavy scanner's end) and ``R``
otherwise; one-sided baselines are read from the left only and write ``L`` throughout.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from blendsim.common_cli import add_estimation_options, add_seed_option, estimation_config
from blendsim.errors import UserError
from blendsim.limits import check_run_size
from blendsim.outputs import atomic_output, json_text, output_file
from blendsim.sim.planning.plan import Plan
from blendsim.sim.planning.planner import make_plan
from blendsim.sim.planning.policies import POLICIES
from blendsim.traces.trace import Trace


def load_trace(spec: str, requests: int | None, model: str, gpu: str, seed: int) -> Trace:
    """A trace file, or a preset name when no file of that name exists."""
    if os.path.exists(spec):
        try:
            from blendsim.traces.io import read_trace
        except ImportError:
            raise UserError("reading trace files needs blendsim.traces.io, which is not installed") from None
        return read_trace(spec)
    from blendsim.traces.mixer import PRESETS, make_preset

    if spec in PRESETS:
        return make_preset(spec, requests=requests, model=model, gpu=gpu, seed=seed)
    raise UserError(f"trace {spec!r} is neither a file nor a preset; presets: {', '.join(sorted(PRESETS))}")


def unit_sides(plan: Plan) -> np.ndarray:
    """'L' or 'R' per request in plan order (see the module docstring)."""
    sizes = np.diff(plan.unit_bounds)
    if not plan.two_sided:
        return np.full(len(plan.order), "L")
    left = plan.unit_density >= plan.target_density
    return np.repeat(np.where(left, "L", "R"), sizes)


def write_order(plan: Plan, trace: Trace, path: str | os.PathLike[str]) -> None:
    sides = unit_sides(plan)
    units = np.repeat(np.arange(plan.num_units), np.diff(plan.unit_bounds))
    ids = trace.request_id[plan.order]
    with atomic_output(path) as tmp, open(tmp, "w") as fh:
        fh.write("rank,request_id,position,unit,side\n")
        fh.writelines(f"{k},{ids[k]},{plan.order[k]},{units[k]},{sides[k]}\n" for k in range(len(plan.order)))


def summary(plan: Plan) -> dict[str, Any]:
    s = dict(plan.stats)
    out: dict[str, Any] = {
        "policy": plan.policy,
        "two_sided": plan.two_sided,
        "target_density": plan.target_density,
    }
    out.update(s)
    if plan.two_sided:
        sides = unit_sides(plan)
        out["left_requests"] = int(np.sum(sides == "L"))
        out["right_requests"] = int(np.sum(sides == "R"))
    return out


def run(args: argparse.Namespace) -> int:
    order_out = output_file(args.order_out, "--order-out", inputs=[args.trace]) if args.order_out else None
    if args.requests is not None:
        check_run_size(args.requests)
    estimation = estimation_config(args)  # checked before any trace is built
    trace = load_trace(args.trace, args.requests, args.model, args.gpu, args.seed)
    options: dict[str, Any] = {}
    if args.policy == "blend":
        options = {"keep_sharing": args.keep_sharing, "split": not args.no_split, "merge": not args.no_merge}
    if args.policy == "auto":  # ranks on the GPU's built-in profile and the default engine
        from blendsim.profiler.models import get_model
        from blendsim.profiler.profile import resolve_profile
        from blendsim.sim.planning.policies.auto import RankingRun

        options = {"run": RankingRun(resolve_profile(args.gpu, None, get_model(args.model)))}
    plan = make_plan(
        trace,
        args.policy,
        args.model,
        args.gpu,
        estimation=estimation,
        seed=args.seed,
        **options,
    )
    if order_out is not None:
        write_order(plan, trace, order_out)
    info = summary(plan)
    if args.json:
        print(json_text(info, sort_keys=True))
        return 0
    print(
        f"policy {plan.policy}: {info['requests']} requests in {info['units']} units, "
        f"planned in {info['plan_s']:.2f} s"
    )
    print(
        f"  leaves split {info['leaves_split']} ({info['leaf_split_fraction']:.3%}); sharing kept with an "
        f"unbounded cache {info['sharing_kept']:.2%} of DFS ({info['saved_tokens']} of "
        f"{info['optimal_saved_tokens']} prompt tokens saved)"
    )
    print(
        f"  target density {plan.target_density:.3f}; lengths: {info['estimator']}"
        + (f" at {info['sample_rate']:.2%}" if info["sample_rate"] else "")
        + f", video lengths {info['video_lengths']}, noise sigma {info['length_noise']:g}"
        + f", mean relative error {info['length_error']:.2f}"
    )
    if plan.two_sided:
        print(
            f"  left (compute-heavy) requests {info['left_requests']}, right {info['right_requests']}; "
            f"split stop {info['split_stop']} after {info['split_rounds']} round(s)"
        )
    if "auto" in info:
        from blendsim.sim.planning.policies.auto import ranking_line

        print(f"  {ranking_line(info['auto'])}")
    if args.order_out:
        print(f"  admission order written to {args.order_out}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan",
        help="order a trace with a policy and summarise the plan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("trace", metavar="TRACE", help="trace file, or a preset name (trace1..trace4)")
    p.add_argument("--policy", required=True, choices=POLICIES)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--order-out", metavar="FILE", help="write the admission order as CSV")
    add_estimation_options(p)
    add_seed_option(p)
    p.add_argument("--model", default="llama-3-8b")
    p.add_argument("--gpu", default="a100-80g")
    p.add_argument("--requests", type=int, default=None, help="requests when TRACE is a preset")
    p.add_argument(
        "--keep-sharing",
        type=float,
        default=0.99,
        help="blend: fraction of the optimal sharing the split budget keeps (default 0.99)",
    )
    p.add_argument("--no-split", action="store_true", help="blend: sort and merge only")
    p.add_argument("--no-merge", action="store_true", help="blend: one request per unit")
    p.set_defaults(func=run)
