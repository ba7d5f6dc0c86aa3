"""Run the microbenchmark grids on a device and describe the device (peaks, name, software).

Grids (``QUICK`` and ``FULL``) follow the issue: GEMM time against tokens per step (1 ... 8192), decode
attention against (batch, KV length), prefill attention against (query, context), sampling against
sequences and, on CUDA, GEMM and decode attention on two streams for the interference kappa.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy
import torch
from tqdm import tqdm

from blendsim import __version__
from blendsim.errors import UserError
from blendsim.profiler.fit import Measurements
from blendsim.profiler.kernels import Microbench, measure_peaks
from blendsim.profiler.specs import GPUS, HardwareSpec


@dataclass(frozen=True)
class Grid:
    gemm: tuple[int, ...]
    lm_head: tuple[int, ...]
    decode: tuple[tuple[int, int], ...]  # (batch, kv_len)
    prefill: tuple[tuple[int, int], ...]  # (q_len, ctx)
    sampling: tuple[int, ...]
    concurrent: tuple[tuple[int, int, int], ...]  # (tokens, batch, kv_len), CUDA only


QUICK = Grid(
    gemm=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    lm_head=(1, 4, 16, 64, 256),
    decode=tuple((b, kv) for b in (1, 4, 16, 64) for kv in (128, 512, 2048)),
    prefill=tuple((q, c) for q in (16, 64, 256, 1024) for c in (0, 512, 2048)),
    sampling=(1, 4, 16, 64),
    concurrent=tuple((t, b, kv) for t in (256, 1024, 4096) for b, kv in ((32, 1024), (128, 2048))),
)

FULL = Grid(
    gemm=(1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
          4096, 6144, 8192),
    lm_head=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    decode=tuple((b, kv) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) for kv in (128, 512, 2048, 8192)),
    prefill=tuple((q, c) for q in (16, 64, 256, 1024, 4096) for c in (0, 512, 2048, 8192)),
    sampling=(1, 4, 16, 64, 256),
    concurrent=tuple((t, b, kv) for t in (128, 512, 2048, 8192)
                     for b, kv in ((16, 1024), (64, 2048), (256, 4096))),
)


def kv_cap_bytes(device: torch.device) -> int:
    """Largest per-layer KV cache a decode point may allocate: a quarter of device memory (CPU: 2 GiB,
    the machine is shared)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory // 4)
    return 2 * 2**30


def run_grid(bench: Microbench, grid: Grid, progress: bool = True) -> Measurements:
    """Time every point of ``grid``, with a progress bar; decode points over the memory cap are skipped."""
    m = bench.model
    cap = kv_cap_bytes(bench.device)
    per_token = 2 * m.num_kv_heads * m.head_dim * m.dtype_bytes
    decode = [(b, kv) for b, kv in grid.decode if b * kv * per_token <= cap]
    concurrent = list(grid.concurrent) if bench.device.type == "cuda" else []
    meas = Measurements()
    jobs: list[tuple[str, tuple[int, ...]]] = [("gemm", (n,)) for n in grid.gemm]
    jobs += [("lm_head", (n,)) for n in grid.lm_head]
    jobs += [("decode", p) for p in decode]
    jobs += [("prefill", p) for p in grid.prefill]
    jobs += [("sampling", (n,)) for n in grid.sampling]
    jobs += [("overlap", p) for p in concurrent if p[1] * p[2] * per_token <= cap]
    timers: dict[str, tuple[Callable[..., float], list[Any]]] = {
        "gemm": (bench.time_gemm, meas.gemm), "lm_head": (bench.time_lm_head, meas.lm_head),
        "decode": (bench.time_decode_attention, meas.decode),
        "prefill": (bench.time_prefill_attention, meas.prefill),
        "sampling": (bench.time_sampling, meas.sampling),
    }
    bar = tqdm(jobs, desc="profiling", unit="pt", disable=not progress, file=sys.stderr)
    for name, args in bar:
        bar.set_postfix_str(name)
        if name == "overlap":
            meas.concurrent.append(bench.time_concurrent(*args))
        else:
            fn, out = timers[name]
            out.append((*args, fn(*args)))
    return meas


def check_device(device: str) -> torch.device:
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is visible to torch "
                            f"(torch {torch.__version__}); use --device cpu")
        return torch.device("cuda")
    if device != "cpu":
        raise UserError(f"unknown device {device!r}; valid: cpu, cuda")
    return torch.device("cpu")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def datasheet_for(device_name: str) -> HardwareSpec | None:
    """The datasheet spec matching a CUDA device name, or None (then peaks are measured)."""
    name = device_name.upper()
    if "A100" in name and "80GB" in name and "PCIE" not in name:
        return GPUS["a100-80g"]
    if "H100" in name and "PCIE" not in name and "NVL" not in name:
        return GPUS["h100-sxm"]
    if "H200" in name:
        return GPUS["h200"]
    return None


def device_hardware(device: torch.device, threads: int) -> tuple[HardwareSpec, str, bool]:
    """(hardware spec, device description, peaks measured?). CPU peaks are always measured."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        spec = datasheet_for(props.name)
        if spec is not None:
            return spec, props.name, False
        flops, bw = measure_peaks("cuda")
        return (HardwareSpec(props.name.lower().replace(" ", "-"), flops, bw, float(props.total_memory),
                             0.0, f"measured on {props.name}: bf16 4096^3 matmul, 512 MiB copy; "
                             "interconnect not measured"), props.name, True)
    flops, bw = measure_peaks("cpu", size=3072)
    capacity = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    name = cpu_name()
    desc = f"{name}, {threads} thread(s)"
    spec = HardwareSpec(f"cpu-{threads}t", flops, bw, capacity, 0.0,
                        f"measured on {desc}: bf16 3072^3 matmul FLOP/s, 512 MiB copy (read + write) "
                        "bytes/s, memory from os.sysconf; no interconnect")
    return spec, desc, True


def software_versions(device: torch.device, threads: int) -> dict[str, str]:
    out = {"blendsim": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "scipy": scipy.__version__, "threads": str(threads)}
    if device.type == "cuda":
        out["cuda"] = str(torch.version.cuda)
    return out
