"""The work behind ``blendsim profile``: run the microbenchmarks, fit, report, write the profile.

Imports torch; ``profile_cli`` imports this module only when the verb runs, so the rest of the CLI
works in an installation without torch.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import torch

from blendsim.errors import UserError
from blendsim.outputs import output_file
from blendsim.profiler.fit import FitResult, Measurements, fit_profile, prefill_work
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.measure import (
    FULL,
    QUICK,
    Grid,
    check_device,
    device_hardware,
    run_grid,
    software_versions,
)
from blendsim.profiler.models import ModelSpec, get_model
from blendsim.profiler.profile import Profile, Provenance
from blendsim.profiler.work_counts import (
    decode_kv_bytes,
    layer_gemm_flops,
    layer_weight_bytes,
    prefill_attn_flops,
)


def run(args: argparse.Namespace) -> int:
    output = output_file(args.output, "-o")
    model = get_model(args.model)
    device = check_device(args.device)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    grid = QUICK if args.quick else FULL
    start = time.perf_counter()
    profile, meas, fit = build_profile(model, device, grid, args.threads, progress=not args.no_progress)
    profile.save(output)
    print_report(profile, model, meas, fit, time.perf_counter() - start)
    print(f"wrote {args.output}")
    return 0


def build_profile(
    model: ModelSpec, device: torch.device, grid: Grid, threads: int, progress: bool = True
) -> tuple[Profile, Measurements, FitResult]:
    """Measure peaks and the grid, fit, and return the (unbound) measured profile."""
    hardware, desc, peaks_measured = device_hardware(device, threads)
    meas = run_grid(model, device, grid, progress)
    fit = fit_profile(meas, model, hardware)
    sources = {k: f"least-squares fit on {n} {k} measurements" for k, n in fit.points.items() if n}
    if fit.points["overlap"]:
        n = fit.points["overlap"]
        for key in ("overlap_bandwidth_share", "overlap_compute_share", "overlap_sync_s"):
            sources[key] = (
                f"least-squares fit of the shared interference model on {n} overlapped steps (two "
                "nano-batches, GEMMs beside attention: blendsim.profiler.overlap_fit), the serial fit kept"
            )
        sources["interference"] = "shared: fitted on overlapped steps (above)"
        sources["nano_batches"] = "2: the overlapped replay's nano-batches (blendsim.profiler.overlap_step)"
        sources["kappa"] = (
            f"the constant model's equivalent of the same {n} steps (median), for sensitivity studies"
        )
    else:
        sources["kappa"] = "1.0: no overlapped steps measured (one core): operators one after the other"
    sources["step_overhead_s"] = "sampling intercept only; engine scheduling overhead not measured"
    sources["gemm_table_eff"] = (
        f"median layer-GEMM time per token count over {grid.rounds} rounds of the grid; "
        "the step model interpolates it (the curve fit gives only the ridge point)"
    )
    sources["prefill_attn_extra_pairs"] = "least-squares (NNLS) fit with attn_eff and both latencies"
    beside = sorted({p for _, _, p, _ in meas.decode})
    sources["decode_prefill_s"] = (
        f"least-squares fit with kv_bw_eff and decode_attn_latency_s on decode "
        f"points beside {beside[0]} to {beside[-1]} prefill tokens "
        "(0 unless 3+ distinct counts)"
    )
    sources["peaks"] = "measured" if peaks_measured else "datasheet"
    prov = Provenance(
        measured=True,
        device=desc,
        date=datetime.date.today().isoformat(),
        software=software_versions(device, threads),
        fit_error=fit.mape,
        sources=sources,
        notes=f"grid {'quick' if grid is QUICK else 'full'}; timings are medians; model weights random",
    )
    name = f"{hardware.name}-{model.name}"
    return Profile(name, hardware, model.name, fit.params, prov), meas, fit


def achieved(meas: Measurements, model: ModelSpec, hw: HardwareSpec) -> dict[str, float]:
    """Best achieved rates over the measurements: FLOP/s and bytes/s."""
    return {
        "gemm_flops": max(layer_gemm_flops(model, n) / s for n, s in meas.gemm),
        "weight_stream_bw": max(layer_weight_bytes(model) / s for _, s in meas.gemm),
        "decode_bw": max(decode_kv_bytes(model, b * kv) / s for b, kv, _, s in meas.decode),
        "prefill_flops": max(
            prefill_attn_flops(model, prefill_work(q, c, k)[0]) / s for q, c, k, s in meas.prefill
        ),
    }


def print_report(
    profile: Profile, model: ModelSpec, meas: Measurements, fit: FitResult, seconds: float
) -> None:
    hw, prm = profile.hardware, profile.params
    print(f"profile {profile.name} on {profile.provenance.device} ({seconds:.1f} s)")
    print(
        f"  peaks: {hw.peak_flops / 1e12:.3f} TFLOP/s, {hw.mem_bandwidth / 1e9:.1f} GB/s "
        f"({profile.provenance.sources['peaks']})"
    )
    a = achieved(meas, model, hw)
    print(
        f"  achieved: GEMM {a['gemm_flops'] / 1e12:.3f} TFLOP/s ({a['gemm_flops'] / hw.peak_flops:.0%}),"
        f" prefill attention {a['prefill_flops'] / 1e12:.3f} TFLOP/s "
        f"({a['prefill_flops'] / hw.peak_flops:.0%}), decode attention {a['decode_bw'] / 1e9:.1f} GB/s "
        f"({a['decode_bw'] / hw.mem_bandwidth:.0%}), weight streaming "
        f"{a['weight_stream_bw'] / 1e9:.1f} GB/s ({a['weight_stream_bw'] / hw.mem_bandwidth:.0%})"
    )
    print(
        f"  fitted: GEMM e_max {prm.gemm_eff_max:.3f} n_half {prm.gemm_n_half:.1f} weight-bw "
        f"{prm.weight_bw_eff:.3f} latency {prm.gemm_latency_s * 1e3:.3f} ms; LM head x"
        f"{prm.lm_head_time_scale:.2f}; KV bw {prm.kv_bw_eff:.3f} latency "
        f"{prm.decode_attn_latency_s * 1e3:.3f} ms + {prm.decode_prefill_s * 1e3:.3f} ms x P / (P + "
        f"{prm.decode_prefill_half:.0f}) beside P prefill tokens; attention {prm.attn_eff:.3f} + "
        f"{prm.prefill_attn_extra_pairs:.1f} pairs/token, latency {prm.prefill_attn_latency_s * 1e3:.3f} ms "
        f"+ {prm.prefill_chunk_latency_s * 1e3:.3f} ms/chunk; step "
        f"{prm.step_overhead_s * 1e3:.3f} ms + {prm.seq_overhead_s * 1e6:.1f} us/seq"
    )
    if prm.interference == "shared":
        print(
            f"  interference (fitted, {prm.nano_batches} nano-batches): the two sides together reach "
            f"{prm.overlap_bandwidth_share:.2f}x one side's bandwidth, each loses "
            f"{prm.overlap_compute_share:.0%} of its compute to the other, hand-offs "
            f"{prm.overlap_sync_s * 1e3:.2f} ms per step "
            f"(constant-model equivalent kappa {prm.kappa:.2f})"
        )
    else:
        print(f"  interference: constant kappa {prm.kappa:.2f} (no overlapped steps measured)")
    print("  fit error (MAPE) per operator:")
    for op, err in fit.mape.items():
        print(f"    {op:18s} {err:6.1%}  ({fit.points[op]} points)")
    sys.stdout.flush()
