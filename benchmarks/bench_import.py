"""Import of a 1M-line trace: wall time, lines per second and peak memory beside the file's size.

Writes a Mooncake-style hash-ids file (``--lines``, default 1,000,000; prompts of 1-16 blocks of 512
tokens under 64 shared first blocks, as a production trace's system prompts) and imports it in a
fresh child process, whose resident memory is read before the import and at its peak. Targets: the
memory the import adds stays below 5 x the trace's own columns (bounded memory: the file is
streamed, nothing per line is kept but the columns), and the import runs at >= 50,000 lines/s.

    .venv/bin/python benchmarks/bench_import.py [--lines 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_LINES_S = 50_000
COLUMN_FACTOR = 5  # the columns and the build's temporaries (unique ids, their inverse, the checks)


def write_file(path: Path, lines: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(1, 17, size=lines)
    first = rng.integers(0, 64, size=lines)
    outputs = rng.integers(1, 800, size=lines)
    next_id = 64
    with open(path, "w") as fh:
        for k in range(lines):
            ids = [int(first[k]), *range(next_id, next_id + int(blocks[k]) - 1)]
            next_id += int(blocks[k]) - 1
            p = 512 * int(blocks[k]) - int(rng.integers(0, 512))
            fh.write(
                json.dumps(
                    {"timestamp": k, "input_length": p, "output_length": int(outputs[k]), "hash_ids": ids}
                )
            )
            fh.write("\n")


CHILD = """
import resource, sys, time
from blendsim.traces.importers import import_trace
base = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
t = time.perf_counter()
trace = import_trace(sys.argv[1], "hash-ids")
wall = time.perf_counter() - t
columns = (trace.seg_ids, trace.seg_lens, trace.seg_offsets, trace.output_len, trace.prompt_len)
cols = sum(a.nbytes for a in columns)
print(len(trace), wall, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cols)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="DIR", help="write the file here (default: a temporary folder)")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trace.jsonl"
    t = time.perf_counter()
    write_file(path, args.lines)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path}: {args.lines:,} lines, {size_mb:,.0f} MB in {time.perf_counter() - t:.1f} s")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    n, wall, base_kb, peak_kb, cols = out.stdout.split()
    grew_mb = (int(peak_kb) - int(base_kb)) / 1e3
    cols_mb = int(cols) / 1e6
    rate = int(n) / float(wall)
    target = f"target >= {TARGET_LINES_S:,}"
    print(f"imported {int(n):,} requests in {float(wall):.1f} s: {rate:,.0f} lines/s ({target})")
    print(
        f"memory grew {grew_mb:,.0f} MB for {cols_mb:,.0f} MB of trace columns, beside a {size_mb:,.0f} MB "
        f"file (target < {COLUMN_FACTOR} x the columns: nothing per line is kept)"
    )
    if not args.keep:
        os.remove(path)
        os.rmdir(folder)
    ok = rate >= TARGET_LINES_S and grew_mb < COLUMN_FACTOR * cols_mb
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
