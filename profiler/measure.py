"""Run the microbenchmark grids on a device and describe the device (peaks, name, software).

Grids (``QUICK`` and ``FULL``) follow the issue: GEMM time against tokens per step (1 ... 8192), decode
attention against (batch, KV length), prefill attention against (query, context, chunks), LM head and
sampling against sequences, and overlapped steps (two nano-batches, GEMMs beside attention, on two cores
or two CUDA streams) for the interference model (:mod:`blendsim.profiler.overlap_fit`). Every point is a
synthetic engine step replayed as a whole forward pass with the executor's step replay
(:mod:`blendsim.profiler.forward_pass`), each operator timed where a real pass runs it (decode attention
right after the layer's GEMMs, the LM head after the last layer), on the same clock as the replay;
operators measured in isolation ran 6-80 % faster on this CPU (warm instruction and data caches) and made
the model optimistic.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

import numpy as np
import scipy
import torch
from tqdm import tqdm

from blendsim import __version__
from blendsim.errors import UserError
from blendsim.profiler.cost import BatchShape
from blendsim.profiler.fit import Measurements, causal_pairs
from blendsim.profiler.forward_pass import StepReplayer, prefill_chunks
from blendsim.profiler.gpus import GPUS, HardwareSpec
from blendsim.profiler.kernels import measure_peaks
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.overlap_fit import FULL_OVERLAP, QUICK_OVERLAP, overlap_steps


@dataclass(frozen=True)
class Grid:
    """Synthetic engine steps, each replayed as a whole forward pass (``forward_pass.StepReplayer``).

    gemm: tokens per step, as a prefill step of chunks of at most ``GEMM_CHUNK`` tokens at context 0
        (cheap attention; also the grid's many-chunk prefill points);
    lm_head: sequences per step, as decode steps over ``HEAD_KV`` tokens each;
    decode: (batch, kv_len) decode steps; prefill: (q_len, ctx, chunks) prefill steps;
    decode_prefill: (batch, kv_len, tokens) decode steps beside one prefill chunk of ``tokens`` at
        context 0, so that decode sizes cross prefill sizes (decode attention slows beside a large
        prefill by a fixed extra, fitted as ``decode_prefill_s``);
    sampling: kept for the grid's shape (every step samples its sequences, so all steps measure it);
    overlap: (decode sequences, KV tokens each, prefill tokens, their context) steps replayed
        overlapped (:data:`blendsim.profiler.overlap_fit.QUICK_OVERLAP`), where two cores or a GPU allow.
    Every operator of every step is recorded: a decode step also measures the GEMMs at ``batch``
    tokens, the LM head and sampling at ``batch`` sequences.
    """

    gemm: tuple[int, ...]
    lm_head: tuple[int, ...]
    decode: tuple[tuple[int, int], ...]  # (batch, kv_len)
    prefill: tuple[tuple[int, int, int], ...]  # (q_len, ctx, chunks)
    sampling: tuple[int, ...]
    overlap: tuple[tuple[int, int, int, int], ...]  # (decodes, kv_len, prefill tokens, context)
    decode_prefill: tuple[tuple[int, int, int], ...] = ()  # (batch, kv_len, prefill tokens)
    rounds: int = 5  # passes over the whole grid (medians per point; spread over the profiling time)


GEMM_CHUNK = 64
HEAD_KV = 128
# Decode points run beside a small prefill chunk and prefill points beside a few decodes: a step's
# attention after larger GEMMs (and next to the other attention) ran up to 1.7x slower on this CPU
# than in a pure step (b=2, kv=600: 5.2 ms pure, 5.8 ms beside 19 prefill tokens, 8.8 ms beside 200),
# and most steps of a chunked-prefill engine are mixed. The decode side of it is modelled
# (StepParams.decode_prefill_s, fitted on every decode point with its step's prefill tokens).
MIX_PREFILL = BatchShape(prefill_tokens=32, prefill_attn_pairs=causal_pairs(32, 256), prefill_seqs=1)
MIX_DECODE = BatchShape(decode_seqs=4, decode_kv_tokens=4 * 512)

QUICK = Grid(
    gemm=(1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048),
    lm_head=(1, 4, 16, 64, 256),
    decode=tuple((b, kv) for b in (1, 4, 16, 64, 256) for kv in (128, 512, 2048) if b * kv <= 2**17),
    prefill=tuple((q, c, 1) for q in (16, 64, 256, 1024) for c in (0, 512, 2048))
    + ((256, 512, 4), (1024, 0, 2)),
    sampling=(1, 4, 16, 64),
    overlap=QUICK_OVERLAP,
    decode_prefill=((1, 512, 1024), (16, 512, 256), (64, 512, 1024), (4, 2048, 512)),
    rounds=3,
)

FULL = Grid(
    gemm=(
        1,
        2,
        4,
        8,
        12,
        16,
        24,
        32,
        48,
        64,
        96,
        128,
        192,
        256,
        384,
        512,
        768,
        1024,
        1536,
        2048,
        3072,
        4096,
        6144,
        8192,
    ),
    lm_head=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    decode=tuple((b, kv) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) for kv in (128, 512, 2048, 8192)),
    prefill=tuple((q, c, 1) for q in (16, 64, 256, 1024, 4096) for c in (0, 512, 2048, 8192))
    + ((256, 512, 4), (1024, 0, 2), (64, 1024, 8)),
    sampling=(1, 4, 16, 64, 256),
    overlap=FULL_OVERLAP,
    decode_prefill=tuple(
        (b, kv, p) for b, kv in ((1, 512), (16, 2048), (128, 512)) for p in (256, 1024, 4096)
    ),
    rounds=7,
)


def kv_cap_bytes(device: torch.device) -> int:
    """Largest per-layer KV cache a decode point may allocate: a quarter of device memory (CPU: 2 GiB,
    the machine is shared)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory // 4)
    return 2 * 2**30


def grid_steps(model: ModelSpec, grid: Grid, device: torch.device) -> list[BatchShape]:
    """The grid's synthetic steps (see :class:`Grid`), without duplicates; decode points whose
    per-layer KV exceeds the device cap are skipped."""
    per_token = 2 * model.num_kv_heads * model.head_dim * model.dtype_bytes
    cap = kv_cap_bytes(device)
    steps: list[BatchShape] = []
    for n in grid.gemm:
        k = -(-n // GEMM_CHUNK)
        steps.append(prefill_step(n // k, 0, k) if n % k == 0 else prefill_step(n, 0, 1))
    steps += [mixed(decode_step(b, kv), MIX_PREFILL) for b, kv in grid.decode if b * kv * per_token <= cap]
    steps += [
        mixed(decode_step(b, kv), prefill_step(p, 0, 1))
        for b, kv, p in grid.decode_prefill
        if b * kv * per_token <= cap
    ]
    steps += [decode_step(s, HEAD_KV) for s in grid.lm_head]
    steps += [mixed(prefill_step(q, c, k), MIX_DECODE) for q, c, k in grid.prefill]
    return list(dict.fromkeys(steps))


def mixed(a: BatchShape, b: BatchShape) -> BatchShape:
    """One step running both batches (the form of most steps a chunked-prefill engine runs)."""
    return BatchShape(
        a.prefill_tokens + b.prefill_tokens,
        a.prefill_attn_pairs + b.prefill_attn_pairs,
        a.decode_seqs + b.decode_seqs,
        a.decode_kv_tokens + b.decode_kv_tokens,
        a.prefill_seqs + b.prefill_seqs,
    )


def decode_step(batch: int, kv_len: int) -> BatchShape:
    return BatchShape(decode_seqs=batch, decode_kv_tokens=batch * kv_len)


def prefill_step(q_len: int, ctx: int, chunks: int) -> BatchShape:
    return BatchShape(
        prefill_tokens=q_len * chunks,
        prefill_attn_pairs=chunks * causal_pairs(q_len, ctx),
        prefill_seqs=chunks,
    )


def run_grid(
    model: ModelSpec, device: torch.device, grid: Grid, progress: bool = True, seed: int = 0
) -> Measurements:
    """Replay every step of ``grid`` ``grid.rounds`` times (one step after the other, round after
    round), record each operator's median time per step, and on CUDA the two-stream points."""
    steps = grid_steps(model, grid, device)
    overlap = overlap_steps(grid.overlap) if can_overlap(device) else []
    if device.type == "cpu" and torch.get_num_threads() != 1:
        overlap = []  # one torch thread per side, or the two sides fight over the cores
    replayer = StepReplayer(model, steps + overlap, str(device), seed=seed)
    for shape in steps[:3]:  # warm-up: allocator, kernels, page faults of the ring
        replayer.run(shape)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(steps))
    samples: list[dict[str, list[float]]] = [{} for _ in steps]
    overlapped: list[list[float]] = [[] for _ in overlap]
    bar = tqdm(
        total=grid.rounds * (len(steps) + len(overlap)),
        desc="profiling",
        unit="step",
        disable=not progress,
        file=sys.stderr,
    )
    for _ in range(grid.rounds):
        for i in order:
            for op, t in replayer.run(steps[i]).ops.items():
                samples[i].setdefault(op, []).append(t)
            bar.update(1)
        for j in rng.permutation(len(overlap)):
            overlapped[j].append(replayer.run(overlap[j], "overlap").step_s)
            bar.update(1)
    replayer.close()
    meas = Measurements()
    gemm: dict[int, list[float]] = {}
    for shape, ops in zip(steps, samples, strict=True):
        med = {op: float(np.median(v)) for op, v in ops.items()}
        gemm.setdefault(shape.gemm_tokens, []).append(med["gemm"])
        seqs = shape.decode_seqs + shape.prefill_seqs
        meas.lm_head.append((seqs, med["lm_head"]))
        meas.sampling.append((seqs, med["sampling"]))
        if shape.decode_seqs:
            meas.decode.append(
                (
                    shape.decode_seqs,
                    shape.decode_kv_tokens // shape.decode_seqs,
                    shape.prefill_tokens,
                    med["decode_attn"],
                )
            )
        if shape.prefill_seqs:
            q, c = prefill_chunks(shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_seqs)[0]
            meas.prefill.append((q, c, shape.prefill_seqs, med["prefill_attn"]))
    meas.gemm = sorted((n, float(np.median(v))) for n, v in gemm.items())
    meas.overlapped = [(shape, float(np.median(t))) for shape, t in zip(overlap, overlapped, strict=True)]
    bar.close()
    return meas


def can_overlap(device: torch.device) -> bool:
    """Whether overlapped steps can run here: a GPU, or two cores for the two sides."""
    return device.type == "cuda" or len(os.sched_getaffinity(0)) >= 2


def check_device(device: str) -> torch.device:
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda: no CUDA GPU is visible to torch "
                f"(torch {torch.__version__}); use --device cpu"
            )
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
        return (
            HardwareSpec(
                props.name.lower().replace(" ", "-"),
                flops,
                bw,
                float(props.total_memory),
                0.0,
                f"measured on {props.name}: bf16 4096^3 matmul, 512 MiB copy; interconnect not measured",
            ),
            props.name,
            True,
        )
    flops, bw = measure_peaks("cpu", size=3072)
    capacity = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    name = cpu_name()
    desc = f"{name}, {threads} thread(s)"
    spec = HardwareSpec(
        f"cpu-{threads}t",
        flops,
        bw,
        capacity,
        0.0,
        f"measured on {desc}: bf16 3072^3 matmul FLOP/s, 512 MiB copy (read + write) "
        "bytes/s, memory from os.sysconf; no interconnect",
    )
    return spec, desc, True


def software_versions(device: torch.device, threads: int) -> dict[str, str]:
    out = {
        "blendsim": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "threads": str(threads),
    }
    if device.type == "cuda":
        out["cuda"] = str(torch.version.cuda)
    return out
