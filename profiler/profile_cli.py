"""``blendsim profile``: measure a device with the model's real shapes, fit the step model, write a
profile JSON that ``--profile`` options (cost, simulate, ...) accept.

Every operator is timed inside synthetic engine steps (GEMMs, decode and prefill attention, LM head,
sampling) and fitted on its own. The overlapping engine's interference model is fitted too: a grid of
steps (GEMM tokens from 32 to 2,048, decode KV from a few to tens of thousands of tokens, prefill
chunks with and without context) is replayed as two nano-batches whose GEMMs run beside their
attention (on a CPU two pinned threads, one per core, with one torch thread each; on a GPU two CUDA
streams), timed by wall clock, and the shared-bandwidth model's three parameters are fitted to those
times (the bandwidth both sides reach together, the compute share each loses to the other, the
hand-offs per step). The report prints every fit's error (MAPE), the overlap's with them. The
overlapped grid needs two cores (or a GPU) and --threads 1.

Needs torch (``pip install 'blendsim[profile]'``); it is imported only when the verb runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from blendsim.errors import require
from blendsim.outputs import output_file


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profile",
        help="measure a device and fit a cost profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", choices=("cpu", "cuda"), required=True)
    p.add_argument("--model", required=True, help="built-in model name or path/to/config.json")
    p.add_argument("--quick", action="store_true", help="a smaller grid (CPU: under 2 minutes)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: steadier timings on a shared machine; the overlapped "
        "grid runs only with 1, one thread per side)",
    )
    p.add_argument("-o", "--output", required=True, help="profile JSON to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output_file(args.output, "-o")
    require("torch", "blendsim profile")
    from blendsim.profiler import profile_run

    return profile_run.run(args)
