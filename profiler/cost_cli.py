"""``blendsim cost``: the cost of one request (paper E3, E4, E6) or of one engine step.

Request: ``--prompt P --output D [--shared S]`` prints Comp, Mem and density at the hardware peaks
(the paper's planning numbers) and at the profile's efficiencies.
Step: ``--prefill Q[@CACHED] ... --decode-seqs B --kv-len L`` prints one step's time in both
compositions with the achieved TFLOP/s and GB/s next to the peaks.
"""

from __future__ import annotations

import argparse
from typing import Any

from blendsim.errors import UserError
from blendsim.limits import check_length
from blendsim.outputs import json_text
from blendsim.profiler.cost import BatchShape, comp_time, mem_time, set_density
from blendsim.profiler.models import get_model
from blendsim.profiler.profile import DEFAULT_GPU, Profile, resolve_profile
from blendsim.profiler.step_model import ENGINES
from blendsim.profiler.work_counts import (
    decode_kv_bytes,
    layer_gemm_flops,
    layer_weight_bytes,
    lm_head_flops,
    lm_head_weight_bytes,
    prefill_attn_flops,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cost",
        help="cost of one request or one engine step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="built-in model name or path/to/config.json")
    p.add_argument("--gpu", default=None, help=f"built-in profile (default {DEFAULT_GPU})")
    p.add_argument("--profile", default=None, metavar="FILE", help="profile JSON (wins over --gpu)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    r = p.add_argument_group("one request")
    r.add_argument("--prompt", type=int, help="prompt length p")
    r.add_argument("--output", type=int, help="output length d")
    r.add_argument("--shared", type=int, default=0, help="prompt tokens served from the prefix cache")
    b = p.add_argument_group("one step")
    b.add_argument(
        "--prefill",
        action="append",
        default=[],
        metavar="Q[@CACHED]",
        help="a prefill chunk of Q tokens after CACHED context tokens (repeatable)",
    )
    b.add_argument("--decode-seqs", type=int, default=0, help="decoding requests in the step")
    b.add_argument("--kv-len", type=int, default=0, help="mean KV length of the decoding requests")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = get_model(args.model)
    profile = resolve_profile(args.gpu, args.profile, model, args.tp)
    out: dict[str, Any] = {
        "model": model.name,
        "profile": profile.name,
        "tp": args.tp,
        "measured_profile": profile.provenance.measured,
    }
    if args.prompt is None and args.output is None and not args.prefill and not args.decode_seqs:
        raise UserError(
            "give a request (--prompt P --output D) or a step (--prefill Q[@CACHED], "
            "--decode-seqs B --kv-len L)"
        )
    if args.prompt is not None or args.output is not None:
        out["request"] = request_cost(args, profile)
    if args.prefill or args.decode_seqs:
        out["step"] = step_cost(parse_step(args), profile)
    if args.json:
        print(json_text(out))  # a density without memory time (no output tokens) is null
    else:
        print_text(out, profile)
    return 0


def request_cost(args: argparse.Namespace, profile: Profile) -> dict[str, float]:
    p, d, s = args.prompt, args.output, args.shared
    if p is None or d is None:
        raise UserError("a request needs both --prompt and --output")
    if p < 0 or d < 0 or not 0 <= s <= p:
        raise UserError(f"need --prompt >= 0, --output >= 0 and 0 <= --shared <= --prompt; got {p}, {d}, {s}")
    check_length(p, "--prompt")
    check_length(d, "--output")
    model, hw, prm = profile.steps.model, profile.hardware, profile.params
    comp = float(comp_time(p, d, model, hw)) * (p + d - s) / (p + d) if p + d else 0.0
    mem = float(mem_time(p, d, model, hw))
    return {
        "prompt": p,
        "output": d,
        "shared": s,
        "sharing": s / (p + d) if p + d else 0.0,
        "comp_s": comp,
        "mem_s": mem,
        "density": set_density(p, d, model, hw, saved_tokens=s) if mem > 0 else float("inf"),
        "comp_eff_s": comp / prm.gemm_eff_max,
        "mem_eff_s": mem / prm.kv_bw_eff,
    }


def parse_step(args: argparse.Namespace) -> BatchShape:
    tokens, pairs = 0, 0.0
    for chunk in args.prefill:
        q_text, at, c_text = chunk.partition("@")
        try:
            q, cached = int(q_text), int(c_text if at else 0)
        except ValueError:
            raise UserError(f"--prefill {chunk!r} is not Q or Q@CACHED (integers)") from None
        if q <= 0 or cached < 0:
            raise UserError(f"--prefill {chunk!r} needs Q > 0 and CACHED >= 0")
        check_length(q + cached, f"--prefill {chunk!r}: Q + CACHED =")
        tokens += q
        pairs += q * cached + q * (q + 1) / 2
    if args.decode_seqs < 0 or args.kv_len < 0:
        raise UserError("--decode-seqs and --kv-len must be >= 0")
    if args.decode_seqs and not args.kv_len:
        raise UserError("decoding requests need --kv-len (their mean KV length, >= 1)")
    check_length(args.kv_len, "--kv-len")
    check_length(args.decode_seqs, "--decode-seqs")
    return BatchShape(
        prefill_tokens=tokens,
        prefill_attn_pairs=pairs,
        decode_seqs=args.decode_seqs,
        decode_kv_tokens=args.decode_seqs * args.kv_len,
        prefill_seqs=len(args.prefill),
    )


def step_cost(shape: BatchShape, profile: Profile) -> dict[str, Any]:
    sm, hw = profile.steps, profile.hardware
    model = sm.model
    seqs = shape.decode_seqs + shape.prefill_seqs
    flops = (
        layer_gemm_flops(model, shape.gemm_tokens)
        + lm_head_flops(model, seqs)
        + prefill_attn_flops(model, shape.prefill_attn_pairs)
    )
    nbytes = (
        decode_kv_bytes(model, shape.decode_kv_tokens)
        + layer_weight_bytes(model)
        + (lm_head_weight_bytes(model) if seqs else 0.0)
    )
    out: dict[str, Any] = {
        "prefill_tokens": shape.prefill_tokens,
        "prefill_attn_pairs": shape.prefill_attn_pairs,
        "decode_seqs": shape.decode_seqs,
        "decode_kv_tokens": shape.decode_kv_tokens,
        "flops": flops,
        "bytes": nbytes,
        "peak_tflops": hw.peak_flops / 1e12,
        "peak_gbps": hw.mem_bandwidth / 1e9,
        "gemm_s": sm.gemm_time(shape.gemm_tokens),
        "lm_head_s": sm.lm_head_time(seqs),
        "prefill_attn_s": sm.prefill_attn_time(
            shape.prefill_attn_pairs, shape.prefill_tokens, shape.prefill_seqs
        ),
        "decode_attn_s": sm.decode_attn_time(shape.decode_kv_tokens, shape.prefill_tokens),
        "gemm_efficiency": sm.gemm_efficiency(shape.gemm_tokens),
    }
    for engine in ENGINES:
        t = profile.step_time(shape, engine)
        out[engine] = {
            "compute_s": t.compute_s,
            "memory_s": t.memory_s,
            "overhead_s": t.overhead_s,
            "total_s": t.total_s,
            "achieved_tflops": flops / t.total_s / 1e12,
            "achieved_gbps": nbytes / t.total_s / 1e9,
        }
    return out


def print_text(out: dict[str, Any], profile: Profile) -> None:
    kind = "measured" if profile.provenance.measured else "datasheet peaks, default efficiencies"
    print(f"model {out['model']}  profile {profile.name} ({kind})  tp {out['tp']}")
    if "request" in out:
        r = out["request"]
        print(f"request p={r['prompt']} d={r['output']} shared={r['shared']} (s={r['sharing']:.4f})")
        print(
            f"  at peaks (paper E3/E4/E6): Comp {ms(r['comp_s'])}  Mem {ms(r['mem_s'])}  "
            f"density {r['density']:.2f}"
        )
        print(f"  at profile efficiencies:   Comp {ms(r['comp_eff_s'])}  Mem {ms(r['mem_eff_s'])}")
    if "step" in out:
        s = out["step"]
        print(
            f"step: {s['prefill_tokens']} prefill tokens ({s['prefill_attn_pairs']:.0f} attention "
            f"pairs), {s['decode_seqs']} decodes over {s['decode_kv_tokens']} KV tokens"
        )
        print(
            f"  GEMM {ms(s['gemm_s'])} (efficiency {s['gemm_efficiency']:.1%})  LM head "
            f"{ms(s['lm_head_s'])}  prefill attn {ms(s['prefill_attn_s'])}  decode attn "
            f"{ms(s['decode_attn_s'])}"
        )
        for engine in ENGINES:
            e = s[engine]
            print(
                f"  {engine:8s} {ms(e['total_s'])} = C {ms(e['compute_s'])}, M {ms(e['memory_s'])}, "
                f"overhead {ms(e['overhead_s'])}   {e['achieved_tflops']:.4g} / "
                f"{s['peak_tflops']:.4g} TFLOP/s   {e['achieved_gbps']:.4g} / {s['peak_gbps']:.4g} GB/s"
            )


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms"
