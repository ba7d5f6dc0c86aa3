"""``blendsim trace make | stats | import | export``: generate, inspect, import and export traces."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from blendsim.common_cli import add_seed_option
from blendsim.errors import UserError
from blendsim.limits import check_run_size
from blendsim.outputs import json_text, output_file
from blendsim.profiler.gpus import GPUS
from blendsim.profiler.models import MODELS
from blendsim.traces.io import read_trace, write_trace
from blendsim.traces.mixer import ARRIVALS, PRESETS, make_preset, make_trace
from blendsim.traces.sources import SOURCES
from blendsim.traces.stats import format_stats, trace_stats

DEFAULT_REQUESTS = 40_000  # the paper's appendix trace size (blendserve.md §6.2)

MAKE_EPILOG = (
    "sources:\n"
    + "\n".join(f"  {n:<9} {s.summary}" for n, s in SOURCES.items())
    + "\n\npresets (BlendServe Table 2, BurstGPT + MMLU + OpenVid):\n"
    + "\n".join(
        f"  {n}  density {p.density}, sharing {p.sharing}: {p.description}" for n, p in PRESETS.items()
    )
    + """

examples:
  blendsim trace make --preset trace1 -o t1.parquet
  blendsim trace make --mix azure,mmlu,openvid --density 1.0 --sharing 0.2 --requests 40000 -o a.parquet
  blendsim trace make --mix burstgpt,openvid --density 1.2 --sharing 0.015 --requests 40000 \\
      --lengths-from BurstGPT.csv -o b.parquet
density = GEMM time / decode-attention time of the whole trace at the GPU's datasheet peaks (>1:
compute-bound); sharing = prompt tokens a prefix cache saves / all tokens."""
)


def register(subparsers: Any) -> None:
    trace = subparsers.add_parser(
        "trace",
        help="generate, inspect, import and export workload traces",
        description="Generate workload traces (Parquet), show their statistics, import real traces and "
        "OpenAI batch files, export to other simulators' formats.",
    )
    verbs = trace.add_subparsers(dest="trace_verb", metavar="{make,stats,import,export}")
    trace.set_defaults(func=lambda _args: (trace.print_help(), 2)[1])

    make = verbs.add_parser(
        "make",
        help="mix sources into a trace at a target density and sharing",
        description="Mix sources into one trace whose density and sharing hit the targets "
        "(±3 %% density, ±0.02 sharing), measured on the generated requests.",
        epilog=MAKE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument(
        "--preset", choices=sorted(PRESETS), help="a Table 2 workload (fixes --mix, --density, --sharing)"
    )
    make.add_argument("--mix", help=f"comma-separated sources, in arrival order: {','.join(SOURCES)}")
    make.add_argument("--density", type=float, help="target compute density (e.g. 1.4)")
    make.add_argument("--sharing", type=float, help="target prefix-sharing ratio in [0, 1) (e.g. 0.35)")
    make.add_argument("--requests", type=int, help="number of requests (default 40000)")
    make.add_argument(
        "--model",
        default="llama-3-8b",
        help=f"model for the density: {', '.join(MODELS)}, or a config.json (default llama-3-8b)",
    )
    make.add_argument(
        "--gpu",
        default="a100-80g",
        help=f"GPU whose datasheet peaks define density: {', '.join(GPUS)} (default a100-80g)",
    )
    add_seed_option(make, "trace (same seed, same bytes)")
    make.add_argument(
        "--arrival",
        default="batched",
        choices=ARRIVALS,
        help="batched: each source one batch in --mix order (default); interleaved: all shuffled",
    )
    make.add_argument(
        "--lengths-from",
        metavar="CSV",
        help="draw (input, output) lengths of burstgpt/azure/sharegpt/limo from a real trace "
        "(BurstGPT, Azure or input_tokens,output_tokens CSV, gzip or not)",
    )
    make.add_argument("-o", "--output", required=True, metavar="FILE.parquet", help="output trace file")
    make.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    make.set_defaults(func=run_make)

    stats = verbs.add_parser(
        "stats",
        help="per-source and total statistics of a trace file",
        description="Requests, mean and p99 of prompt (p) and output (d) lengths, tokens, "
        "density and sharing, per source and in total.",
    )
    stats.add_argument("trace", metavar="FILE", help="a trace file (`blendsim trace make` or `trace import`)")
    stats.add_argument("--model", help="model for the density (default: the file's, else llama-3-8b)")
    stats.add_argument("--gpu", help="GPU for the density (default: the file's, else a100-80g)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=run_stats)

    from blendsim.traces.importers import cli as transfer

    transfer.register(verbs)  # import, export


def _progress(quiet: bool) -> Any:
    start = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def run_make(args: argparse.Namespace) -> int:
    say = _progress(args.quiet)
    output = output_file(args.output, "-o", inputs=[args.lengths_from] if args.lengths_from else [])
    requests = DEFAULT_REQUESTS if args.requests is None else args.requests
    check_run_size(requests)
    if args.preset:
        clash = [
            "--" + k.replace("_", "-")
            for k in ("mix", "density", "sharing", "lengths_from")
            if getattr(args, k) is not None
        ]
        if clash:
            raise UserError(f"--preset {args.preset} fixes the mix and targets; drop {', '.join(clash)}")
        trace = make_preset(args.preset, args.requests, args.model, args.gpu, args.seed, args.arrival, say)
    else:
        missing = [f"--{k}" for k in ("mix", "density", "sharing") if getattr(args, k) is None]
        if missing:
            raise UserError(f"trace make needs {', '.join(missing)} (or --preset trace1..trace4)")
        mix = [s.strip() for s in args.mix.split(",") if s.strip()]
        trace = make_trace(
            mix,
            args.density,
            args.sharing,
            requests,
            args.model,
            args.gpu,
            seed=args.seed,
            arrival=args.arrival,
            lengths_from=args.lengths_from,
            progress=say,
        )
    say(f"writing {args.output}")
    write_trace(trace, output)
    meta = trace.metadata
    counts = ", ".join(f"{k} {v}" for k, v in meta["counts"].items())
    print(
        f"wrote {args.output}: {len(trace)} requests ({counts}); density {meta['achieved']['density']:.4g} "
        f"(target {meta['targets']['density']}), sharing {meta['achieved']['sharing']:.4f} "
        f"(target {meta['targets']['sharing']}) for {meta['model']} on {meta['gpu']}"
    )
    return 0


def run_stats(args: argparse.Namespace) -> int:
    trace = read_trace(args.trace)
    model = args.model or trace.metadata.get("model") or "llama-3-8b"
    gpu = args.gpu or trace.metadata.get("gpu") or "a100-80g"
    stats = trace_stats(trace, model, gpu)
    if args.json:
        out = {**stats, "file": args.trace, "metadata": trace.metadata}
        print(json_text(out, sort_keys=True))
    else:
        print(format_stats(stats))
        imported = trace.metadata.get("imported")
        if imported:
            block = f", {imported['block_size']}-token blocks" if "block_size" in imported else ""
            lengths = trace.metadata.get("output_lengths", {}).get("source")
            lines = f"{imported['lines']:,} lines"
            print(
                f"imported from {imported['file']} ({imported['format']}{block}, {lines}, "
                f"sha256 {imported['sha256'][:12]}…)"
                + (f"; output lengths from {lengths}" if lengths else "")
            )
    return 0
