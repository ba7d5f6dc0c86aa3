"""``blendsim profile``: measure a device with the model's real shapes, fit the step model, write a
profile JSON that ``--profile`` options (cost, simulate, ...) accept.

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
        help="CPU threads for torch (default 1: steadier timings on a shared machine)",
    )
    p.add_argument("-o", "--output", required=True, help="profile JSON to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output_file(args.output, "-o")
    require("torch", "blendsim profile")
    from blendsim.profiler import profile_run

    return profile_run.run(args)
