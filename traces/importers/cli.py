"""``blendsim trace import`` and ``blendsim trace export``: their parsers and what they run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from blendsim.outputs import output_file
from blendsim.traces.importers import IMPORT_FORMATS, ImportOptions, import_trace
from blendsim.traces.importers.export import EXPORT_FORMATS, export_trace

IMPORT_EPILOG = (
    "formats:\n"
    + "\n".join(f"  {name:<14} {summary}" for name, summary in IMPORT_FORMATS.items())
    + """

examples:
  blendsim trace import batch.jsonl --format openai --model-dir ~/.cache/blendsim/smollm2-135m -o b.parquet
  blendsim trace import batch.jsonl --format openai --model-dir DIR --lengths-from results.jsonl -o b.parquet
  blendsim trace import mooncake_trace.jsonl --format hash-ids -o m.parquet
  blendsim trace import bailian.jsonl --format hash-ids --block-size 16 -o q.parquet
  blendsim trace import splitwise_conv.csv --format vidur -o v.parquet
Files may be gzip-compressed. A bad record stops the import with its line and field; nothing is
written then."""
)


def add_import_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, block_size: bool = True
) -> argparse._MutuallyExclusiveGroup:
    """The options that say how a batch becomes a trace (import's; plan-batch's, whose block size is
    its engine's); returns the group of output-length estimates, one of which may be given."""
    if block_size:
        parser.add_argument(
            "--block-size",
            type=int,
            metavar="TOKENS",
            help="prefix block in tokens (default: 128 for openai and llmservingsim, the vLLM-CPU "
            "engine's block; 512 for hash-ids, Mooncake's; use 16 for vLLM on GPUs)",
        )
    parser.add_argument(
        "--default-max-tokens",
        type=int,
        metavar="N",
        help="openai: output length of a line without max_tokens (default: such a line is an error)",
    )
    est = parser.add_mutually_exclusive_group()
    est.add_argument(
        "--lengths-from",
        metavar="RESULTS.jsonl",
        help="openai: output lengths from an earlier run's output file (usage.completion_tokens, by "
        "custom_id; lines it lacks keep max_tokens)",
    )
    est.add_argument(
        "--length-field",
        metavar="FIELD",
        help="openai: output lengths from a field of each line, dotted (e.g. metadata.expected_tokens)",
    )
    return est


def import_options(args: argparse.Namespace, model_dir: str | None, progress: bool) -> ImportOptions:
    return ImportOptions(
        block_size=args.block_size,
        source=getattr(args, "source", None),
        progress=progress,
        model_dir=model_dir,
        default_max_tokens=args.default_max_tokens,
        lengths_from=args.lengths_from,
        length_field=args.length_field,
    )


def register(verbs: Any) -> None:
    imp = verbs.add_parser(
        "import",
        help="read a real trace or OpenAI batch file into a trace",
        description="Read a real trace or an OpenAI batch file into a blendsim trace (Parquet), with its "
        "prefix structure where the file has one (token blocks or hash ids).",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", metavar="FILE", help="the file to import")
    imp.add_argument("--format", required=True, choices=tuple(IMPORT_FORMATS), help="the file's format")
    imp.add_argument("-o", "--output", required=True, metavar="TRACE.parquet", help="trace file to write")
    imp.add_argument(
        "--model-dir", help="openai: Hugging Face model directory whose tokenizer and chat template to use"
    )
    imp.add_argument("--source", help="the trace's source name (default: the file's name)")
    add_import_options(imp)
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)

    exp = verbs.add_parser(
        "export",
        help="write a trace in another simulator's format",
        description="Write a blendsim trace as a Vidur / Sarathi-Serve CSV (lengths) or as Mooncake-style "
        "hash-ids JSONL (lengths and prefix sharing at a block granularity).",
    )
    exp.add_argument("trace", metavar="TRACE", help="a blendsim trace file")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("-o", "--output", required=True, metavar="FILE")
    exp.add_argument(
        "--block-size",
        type=int,
        metavar="TOKENS",
        help="hash-ids: tokens per block (default: the trace's import block size, else 512)",
    )
    exp.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from blendsim.traces.io import write_trace

    output_file(args.output, "-o", inputs=[args.file])
    opts = import_options(args, args.model_dir, progress=not args.quiet and sys.stderr.isatty())
    trace = import_trace(args.file, args.format, opts)
    write_trace(trace, args.output)
    s = trace.metadata["source_stats"]
    lengths = trace.metadata.get("output_lengths", {}).get("source")
    skipped = trace.metadata["imported"].get("skipped_no_output")
    print(
        f"wrote {args.output}: {s['requests']:,} requests from {args.file} ({args.format}); prompts "
        f"{s['prompt_tokens']:,} tokens (mean {s['prompt_mean']:.0f}), outputs {s['output_tokens']:,} "
        f"tokens (mean {s['output_mean']:.0f}{', from ' + lengths if lengths else ''}); sharing "
        f"{s['sharing']:.4f}" + (f"; {skipped} record(s) without output skipped" if skipped else "")
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from blendsim.traces.io import read_trace

    output_file(args.output, "-o", inputs=[args.trace])
    trace = read_trace(args.trace)
    export_trace(trace, args.format, args.output, args.block_size)
    print(f"wrote {args.output}: {len(trace):,} requests as {args.format}")
    return 0
