"""``blendsim profile``: measure a device with the model's real shapes, fit the step model, write a
profile JSON that ``--profile`` options (cost, simulate, ...) accept."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from typing import Any

import torch

from blendsim.errors import UserError
from blendsim.profiler.fit import FitResult, Measurements, causal_pairs, fit_profile
from blendsim.profiler.kernels import Microbench
from blendsim.profiler.measure import (
    FULL,
    QUICK,
    Grid,
    check_device,
    device_hardware,
    run_grid,
    software_versions,
)
from blendsim.profiler.profile import Profile, Provenance
from blendsim.profiler.specs import HardwareSpec, ModelSpec, get_model
from blendsim.profiler.step_model import (
    decode_kv_bytes,
    layer_gemm_flops,
    layer_weight_bytes,
    prefill_attn_flops,
)


def register(sub: Any) -> None:
    p = sub.add_parser("profile", help="measure a device and fit a cost profile",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), required=True)
    p.add_argument("--model", required=True, help="built-in model name or path/to/config.json")
    p.add_argument("--quick", action="store_true", help="a smaller grid (CPU: under 2 minutes)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: steadier timings on a shared machine)")
    p.add_argument("-o", "--output", required=True, help="profile JSON to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = get_model(args.model)
    device = check_device(args.device)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    grid = QUICK if args.quick else FULL
    start = time.perf_counter()
    profile, meas, fit = build_profile(model, device, grid, args.threads, progress=not args.no_progress)
    profile.save(args.output)
    print_report(profile, model, meas, fit, time.perf_counter() - start)
    print(f"wrote {args.output}")
    return 0


def build_profile(model: ModelSpec, device: torch.device, grid: Grid, threads: int,
                  progress: bool = True) -> tuple[Profile, Measurements, FitResult]:
    """Measure peaks and the grid, fit, and return the (unbound) measured profile."""
    hardware, desc, peaks_measured = device_hardware(device, threads)
    bench = Microbench(model, str(device))
    meas = run_grid(bench, grid, progress)
    fit = fit_profile(meas, model, hardware)
    sources = {k: f"least-squares fit on {n} {k} measurements" for k, n in fit.points.items() if n}
    if not fit.points["overlap"]:
        sources["kappa"] = "1.0: operators run one after the other on CPU (no concurrent streams)"
    sources["step_overhead_s"] = ("sampling intercept only; engine scheduling overhead not measured")
    sources["peaks"] = "measured" if peaks_measured else "datasheet"
    prov = Provenance(
        measured=True, device=desc, date=datetime.date.today().isoformat(),
        software=software_versions(device, threads), fit_error=fit.mape, sources=sources,
        notes=f"grid {'quick' if grid is QUICK else 'full'}; timings are medians; model weights random",
    )
    name = f"{hardware.name}-{model.name}"
    return Profile(name, hardware, model.name, fit.params, prov), meas, fit


def achieved(meas: Measurements, model: ModelSpec, hw: HardwareSpec) -> dict[str, float]:
    """Best achieved rates over the measurements: FLOP/s and bytes/s."""
    return {
        "gemm_flops": max(layer_gemm_flops(model, n) / s for n, s in meas.gemm),
        "weight_stream_bw": max(layer_weight_bytes(model) / s for _, s in meas.gemm),
        "decode_bw": max(decode_kv_bytes(model, b * kv) / s for b, kv, s in meas.decode),
        "prefill_flops": max(prefill_attn_flops(model, causal_pairs(q, c)) / s for q, c, s in meas.prefill),
    }


def print_report(profile: Profile, model: ModelSpec, meas: Measurements, fit: FitResult,
                 seconds: float) -> None:
    hw, prm = profile.hardware, profile.params
    print(f"profile {profile.name} on {profile.provenance.device} ({seconds:.1f} s)")
    print(f"  peaks: {hw.peak_flops / 1e12:.3f} TFLOP/s, {hw.mem_bandwidth / 1e9:.1f} GB/s "
          f"({profile.provenance.sources['peaks']})")
    a = achieved(meas, model, hw)
    print(f"  achieved: GEMM {a['gemm_flops'] / 1e12:.3f} TFLOP/s ({a['gemm_flops'] / hw.peak_flops:.0%}),"
          f" prefill attention {a['prefill_flops'] / 1e12:.3f} TFLOP/s "
          f"({a['prefill_flops'] / hw.peak_flops:.0%}), decode attention {a['decode_bw'] / 1e9:.1f} GB/s "
          f"({a['decode_bw'] / hw.mem_bandwidth:.0%}), weight streaming "
          f"{a['weight_stream_bw'] / 1e9:.1f} GB/s ({a['weight_stream_bw'] / hw.mem_bandwidth:.0%})")
    print(f"  fitted: GEMM e_max {prm.gemm_eff_max:.3f} n_half {prm.gemm_n_half:.1f} weight-bw "
          f"{prm.weight_bw_eff:.3f} latency {prm.gemm_latency_s * 1e3:.3f} ms; LM head x"
          f"{prm.lm_head_time_scale:.2f}; KV bw {prm.kv_bw_eff:.3f} latency "
          f"{prm.decode_attn_latency_s * 1e3:.3f} ms; attention {prm.attn_eff:.3f} latency "
          f"{prm.prefill_attn_latency_s * 1e3:.3f} ms; kappa {prm.kappa:.2f}; step "
          f"{prm.step_overhead_s * 1e3:.3f} ms + {prm.seq_overhead_s * 1e6:.1f} us/seq")
    print("  fit error (MAPE) per operator:")
    for op, err in fit.mape.items():
        print(f"    {op:18s} {err:6.1%}  ({fit.points[op]} points)")
    sys.stdout.flush()
