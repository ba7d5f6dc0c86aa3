"""The step model's parameters (:class:`StepParams`): fitted by the profiler or set by a built-in, read
by :class:`~blendsim.profiler.step_model.StepModel`. Efficiencies are fractions of the hardware's
peaks; ``validate`` names every value out of its range."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from blendsim.options import is_finite_number
from blendsim.profiler.interference import INTERFERENCE_KINDS


@dataclass(frozen=True)
class StepParams:
    """Fitted (or default) parameters of the step model. Efficiencies are fractions of the peaks."""

    gemm_eff_max: float  # best GEMM FLOP efficiency, in (0, 2]
    gemm_n_half: float  # tokens per step at which GEMM efficiency is half of gemm_eff_max, >= 0
    weight_bw_eff: float  # bandwidth efficiency of GEMMs that stream their weights
    kv_bw_eff: float  # bandwidth efficiency of decode attention (KV read)
    attn_eff: float  # FLOP efficiency of causal prefill attention
    kappa: float  # overlap interference, 0 = perfect overlap, 1 = serial
    step_overhead_s: float  # fixed time per step
    seq_overhead_s: float  # time per sequence producing logits (sampling)
    gemm_latency_s: float = 0.0  # fixed time of the GEMMs of one step (launches, all layers)
    decode_attn_latency_s: float = 0.0  # fixed time of decode attention in a step that has decodes
    prefill_attn_latency_s: float = 0.0  # fixed time of prefill attention in a step with prefill
    lm_head_time_scale: float = 1.0  # LM head time / the GEMM curve's prediction for its shape
    prefill_attn_extra_pairs: float = 0.0  # masked pairs computed per prefill token (diagonal tiles)
    prefill_chunk_latency_s: float = 0.0  # fixed time of prefill attention per chunk in a step
    decode_prefill_s: float = 0.0  # decode attention's extra time beside a prefill of P -> infinity tokens
    decode_prefill_half: float = 0.0  # P of half that extra; > 0 when decode_prefill_s > 0 (0 / 0 at P = 0)
    gemm_table_tokens: tuple[float, ...] = ()  # tokens per step of the measured GEMM efficiencies
    gemm_table_eff: tuple[float, ...] = ()  # layer-GEMM efficiency (fraction of peak) at those tokens
    # the overlapping engine (blendsim.profiler.interference): "constant" (kappa) or "shared"
    interference: str = "constant"
    overlap_bandwidth_share: float = 1.0  # bandwidth both sides reach together / one side's alone, >= 1
    overlap_compute_share: float = 0.0  # slowdown of a side's compute-bound work beside the other, [0, 1]
    overlap_sm_split: float = 0.0  # compute units given to attention while both run; 0: each side has its own
    nano_batches: int = 2  # nano-batches a step's batch splits into
    overlap_sync_s: float = 0.0  # hand-offs between the two sides, per overlapped step

    def validate(self) -> list[str]:
        """Problems with the values, as readable strings (empty when valid): each names the
        parameter and its valid range."""
        bad = [
            f"{f.name}={getattr(self, f.name)!r} is not a finite number"
            for f in dataclasses.fields(self)
            if f.name != "interference"  # a name, checked below
            and not isinstance(getattr(self, f.name), tuple)
            and not is_finite_number(getattr(self, f.name))
        ]
        bad += [
            f"{name} must be a list of finite numbers, got {getattr(self, name)!r}"
            for name in ("gemm_table_tokens", "gemm_table_eff")
            if not isinstance(getattr(self, name), tuple)
            or not all(is_finite_number(v) for v in getattr(self, name))
        ]
        if bad:
            return bad
        for name in ("gemm_eff_max", "weight_bw_eff", "kv_bw_eff", "attn_eff"):
            v = getattr(self, name)
            if not 0.0 < v <= 2.0:
                bad.append(f"{name}={v} not in (0, 2]")
        if not 0.0 < self.lm_head_time_scale <= 10.0:
            bad.append(f"lm_head_time_scale={self.lm_head_time_scale} not in (0, 10]")
        if not 0.0 <= self.kappa <= 1.0:
            bad.append(f"kappa={self.kappa} not in [0, 1]")
        for name in (
            "gemm_n_half",
            "step_overhead_s",
            "seq_overhead_s",
            "gemm_latency_s",
            "decode_attn_latency_s",
            "prefill_attn_latency_s",
            "prefill_attn_extra_pairs",
            "prefill_chunk_latency_s",
            "decode_prefill_s",
            "decode_prefill_half",
        ):
            v = getattr(self, name)
            if not v >= 0.0:
                bad.append(f"{name}={v} is negative")
        if self.interference not in INTERFERENCE_KINDS:
            bad.append(f"interference={self.interference!r} not one of {', '.join(INTERFERENCE_KINDS)}")
        if not 1.0 <= self.overlap_bandwidth_share <= 4.0:
            bad.append(f"overlap_bandwidth_share={self.overlap_bandwidth_share} not in [1, 4]")
        if not 0.0 <= self.overlap_compute_share <= 1.0:
            bad.append(f"overlap_compute_share={self.overlap_compute_share} not in [0, 1]")
        if not 0.0 <= self.overlap_sm_split <= 0.9:
            bad.append(f"overlap_sm_split={self.overlap_sm_split} not in [0, 0.9]")
        if not (isinstance(self.nano_batches, int) and 2 <= self.nano_batches <= 8):
            bad.append(f"nano_batches={self.nano_batches} is not an integer in [2, 8]")
        if not self.overlap_sync_s >= 0.0:
            bad.append(f"overlap_sync_s={self.overlap_sync_s} is negative")
        if self.decode_prefill_s > 0 and not self.decode_prefill_half > 0:
            bad.append(f"decode_prefill_half={self.decode_prefill_half} must be > 0 if decode_prefill_s > 0")
        toks, effs = self.gemm_table_tokens, self.gemm_table_eff
        if len(toks) != len(effs):
            bad.append(f"gemm_table_tokens ({len(toks)}) and gemm_table_eff ({len(effs)}) differ in length")
        elif toks and not (toks[0] >= 1.0 and all(a < b for a, b in zip(toks, toks[1:], strict=False))):
            bad.append("gemm_table_tokens must be >= 1 and strictly increasing")
        elif not all(0.0 < e <= 2.0 for e in effs):
            bad.append("gemm_table_eff values must be in (0, 2]")
        return bad
