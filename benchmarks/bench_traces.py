"""Time to make, write, read and stat a 400K-request trace (issue 3 targets: make <= 30 s, stat <= 5 s).

Run: .venv/bin/python benchmarks/bench_traces.py [--requests 400000] [--preset trace1]
Prints the absolute times and the ratio to each target.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from blendsim.traces.io import read_trace, write_trace
from blendsim.traces.mixer import make_preset
from blendsim.traces.stats import trace_stats

MAKE_TARGET_S = 30.0
STAT_TARGET_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400_000)
    parser.add_argument("--preset", default="trace1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.parquet"
        t0 = time.perf_counter()
        trace = make_preset(args.preset, requests=args.requests)
        t1 = time.perf_counter()
        write_trace(trace, path)
        t2 = time.perf_counter()
        back = read_trace(path)
        t3 = time.perf_counter()
        stats = trace_stats(back)
        t4 = time.perf_counter()
        size_mb = path.stat().st_size / 1e6
    make_s, stat_s = (t2 - t0), (t4 - t2)
    total = stats["total"]
    print(
        f"{args.preset}: {len(trace)} requests, density {total['density']:.4f}, "
        f"sharing {total['sharing']:.4f}, "
        f"file {size_mb:.1f} MB"
    )
    print(
        f"make  (generate {t1 - t0:.2f} s + write {t2 - t1:.2f} s) = {make_s:.2f} s; "
        f"target {MAKE_TARGET_S:.0f} s; "
        f"ratio {make_s / MAKE_TARGET_S:.3f}"
    )
    print(
        f"stat  (read {t3 - t2:.2f} s + stats {t4 - t3:.2f} s) = {stat_s:.2f} s; "
        f"target {STAT_TARGET_S:.0f} s; "
        f"ratio {stat_s / STAT_TARGET_S:.3f}"
    )


if __name__ == "__main__":
    main()
