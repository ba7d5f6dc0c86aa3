"""Step-level performance model: how long one engine step of a given batch takes.

A step (``BatchShape``) is costed as three parts (design.md, "Performance model"):

compute ``C`` (GEMMs and prefill attention)
    * decoder-layer GEMMs over ``n = prefill_tokens + decode_seqs`` tokens:
      ``max(2 P_layers n / (F e(n)), W_layers / (BW w))`` where ``e(n) = e_max n / (n + n_half)`` is
      the GEMM efficiency (a saturating curve: small token counts fill few tiles and waves) and the
      second term is the weight-bound regime (a GEMM over few tokens is limited by reading its weights).
      The saturating form makes the compute term linear, ``2 P_layers (n + n_half) / (F e_max)``,
      i.e. ``n_half`` acts as a fixed number of "wasted" tokens per step.
      A measured profile may instead carry a *table* of efficiencies at its profiled token counts
      (``gemm_table_tokens``, ``gemm_table_eff``): times interpolated linearly between its points
      (a bisect), held at the first point below it (the weight-bound floor), extended at the last
      point's efficiency above it. A CPU's GEMM efficiency *falls* at large token counts (blocking
      no longer fits its caches), which the saturating curve cannot express.
    * the LM head GEMM over the ``s = decode_seqs + prefill_seqs`` sequences that produce logits this
      step (the same form, with the LM head's parameters and weights, times ``lm_head_time_scale``
      because its very wide shape runs at a different efficiency than the layers' GEMMs);
    * causal prefill attention: ``4 L (heads x head_dim)`` FLOPs per query-key pair (Q K^T and P V are
      ``2 head_dim`` FLOPs per pair and head each) at the attention efficiency ``a``, over the exact
      causal pairs plus ``prefill_attn_extra_pairs`` per prefill token: tiled kernels compute whole
      tiles on the diagonal (a query block of ``B_q`` rows computes every key up to the block's last
      row, ``(B_q - 1) / 2`` masked pairs per row on average; FlashAttention-2 and the CPU replay's
      blocked kernel alike). A fixed ``prefill_chunk_latency_s`` per chunk (one kernel call and mask
      per chunk and layer) adds to the per-step latency.
memory ``M`` (decode attention)
    reads ``decode_kv_tokens x kv_bytes_per_token`` bytes at ``BW k``, plus a fixed extra that grows
    with the step's prefill tokens ``P`` and saturates, ``decode_prefill_s P / (P + decode_prefill_half)``
    (CPU: a decode batch ran up to 3x slower after a large prefill's GEMMs, by about the same time
    whatever its KV size). 0 in the GPU built-ins.
overhead
    ``t_step + t_seq s`` (scheduling, sampling) plus, under tensor parallelism ``tp > 1``, two ring
    all-reduces per layer of ``n x hidden x dtype`` bytes: ``2 L 2 (tp-1)/tp n H dtype / NVLink``.

Compositions: ``serial`` ``t = C + M + overhead``; ``overlap`` under the ``shared`` interference model
(:mod:`blendsim.profiler.interference`; the GPU built-ins and measured CPU profiles) the faster of the
step split into nano-batches, GEMMs beside attention, and the step run whole (``C + M``), plus
overhead; under ``constant`` ``t = max(C, M) + kappa min(C, M) + overhead``. Either way overlap never
exceeds serial. Each operator may also carry a fixed
latency per step (kernel launches over all layers), fitted on CPU and 0 in the GPU built-ins.

The practical optimum of a workload (``optimal_time``) composes the totals at ``e_max`` with no
weight-bound regime, latencies or per-step overhead, as the engine would best run them
(``compose_totals``); it lies below the sum of step times because every step term is at least its
linear part and the composition is subadditive (property-tested for both interference models).
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from dataclasses import dataclass

from blendsim.errors import unknown
from blendsim.profiler.cost import BatchShape, StepTime
from blendsim.profiler.interference import INTERFERENCE_KINDS, co_run_time, nano_batch_split
from blendsim.profiler.specs import HardwareSpec, ModelSpec

ENGINES = ("serial", "overlap")


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
            and not _is_real(getattr(self, f.name))
        ]
        bad += [
            f"{name} must be a list of finite numbers, got {getattr(self, name)!r}"
            for name in ("gemm_table_tokens", "gemm_table_eff")
            if not isinstance(getattr(self, name), tuple) or not all(_is_real(v) for v in getattr(self, name))
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


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---- exact work counts (used by the model, the CLI and the tests) ----


def layer_gemm_flops(model: ModelSpec, tokens: float) -> float:
    """FLOPs of the decoder-layer GEMMs (QKV, O, gated MLP, all layers) over ``tokens`` tokens."""
    return 2.0 * model.layer_params * tokens


def lm_head_flops(model: ModelSpec, seqs: float) -> float:
    return 2.0 * model.lm_head_params * seqs


def prefill_attn_flops(model: ModelSpec, pairs: float) -> float:
    """Causal attention FLOPs: 4 x layers x heads x head_dim per query-key pair."""
    return 4.0 * model.num_layers * model.num_heads * model.head_dim * pairs


def decode_kv_bytes(model: ModelSpec, kv_tokens: float) -> float:
    return float(model.kv_bytes_per_token) * kv_tokens


def layer_weight_bytes(model: ModelSpec) -> float:
    return float(model.layer_params * model.dtype_bytes)


def lm_head_weight_bytes(model: ModelSpec) -> float:
    return float(model.lm_head_params * model.dtype_bytes)


def allreduce_bytes_per_token(model: ModelSpec, tp: int) -> float:
    """Bytes each GPU moves per token per step: 2 ring all-reduces per layer of hidden x dtype."""
    if tp <= 1:
        return 0.0
    return 2.0 * model.num_layers * 2.0 * (tp - 1) / tp * model.hidden_size * model.dtype_bytes


class StepModel:
    """The step model with every constant precomputed; ``step_time`` does only float arithmetic
    (and, with a GEMM table, one bisect)."""

    __slots__ = (
        "params",
        "model",
        "hardware",
        "_c_layer",
        "_w_layer",
        "_c_lm",
        "_w_lm",
        "_h",
        "_attn",
        "_attn_tok",
        "_kv",
        "_ar",
        "_kappa",
        "_t_step",
        "_t_seq",
        "_lat_gemm",
        "_lat_dec",
        "_lat_pre",
        "_lat_chunk",
        "_mix",
        "_mix_half",
        "_c_layer_best",
        "_c_lm_best",
        "_tab_n",
        "_tab_t",
        "_tab_slope",
        "_tab_tail",
        "_shared",
        "_bw_share",
        "_compute_share",
        "_sm_split",
        "_nano",
        "_sync",
    )

    def __init__(self, params: StepParams, model: ModelSpec, hardware: HardwareSpec) -> None:
        self.params = params
        self.model = model
        self.hardware = hardware
        f_gemm = hardware.peak_flops * params.gemm_eff_max
        bw_w = hardware.mem_bandwidth * params.weight_bw_eff
        self._h = params.gemm_n_half
        self._c_layer = layer_gemm_flops(model, 1.0) / f_gemm  # s per token at e_max
        self._c_lm = lm_head_flops(model, 1.0) / f_gemm * params.lm_head_time_scale
        self._c_lm_best = self._c_lm
        self._w_layer = layer_weight_bytes(model) / bw_w
        self._w_lm = lm_head_weight_bytes(model) / bw_w * params.lm_head_time_scale
        self._attn = prefill_attn_flops(model, 1.0) / (hardware.peak_flops * params.attn_eff)
        self._attn_tok = self._attn * params.prefill_attn_extra_pairs
        self._kv = decode_kv_bytes(model, 1.0) / (hardware.mem_bandwidth * params.kv_bw_eff)
        ar_bytes = allreduce_bytes_per_token(model, hardware.tp)
        self._ar = ar_bytes / hardware.interconnect_bandwidth if ar_bytes else 0.0
        self._kappa = params.kappa
        self._t_step = params.step_overhead_s
        self._t_seq = params.seq_overhead_s
        self._lat_gemm = params.gemm_latency_s
        self._lat_dec = params.decode_attn_latency_s
        self._lat_pre = params.prefill_attn_latency_s
        self._lat_chunk = params.prefill_chunk_latency_s
        self._mix, self._mix_half = params.decode_prefill_s, params.decode_prefill_half
        # GEMM table: times at the table's token counts, the slope of each segment, the tail's s/token
        per_token_peak = layer_gemm_flops(model, 1.0) / hardware.peak_flops
        self._tab_n = list(params.gemm_table_tokens)
        self._tab_t = [
            n * per_token_peak / e for n, e in zip(self._tab_n, params.gemm_table_eff, strict=True)
        ]
        self._tab_slope = [
            (t1 - t0) / (n1 - n0)
            for n0, n1, t0, t1 in zip(
                self._tab_n, self._tab_n[1:], self._tab_t, self._tab_t[1:], strict=False
            )
        ]
        self._tab_tail = self._tab_t[-1] / self._tab_n[-1] if self._tab_n else 0.0
        self._shared = params.interference == "shared"
        self._bw_share, self._compute_share = params.overlap_bandwidth_share, params.overlap_compute_share
        self._sm_split = params.overlap_sm_split
        self._nano, self._sync = params.nano_batches, params.overlap_sync_s
        # best s/token: the bound optimal_time uses (every point of a table lies above n x best)
        self._c_layer_best = min(
            (t / n for n, t in zip(self._tab_n, self._tab_t, strict=True)), default=self._c_layer
        )

    # ---- operators (also used by the fit and the CLI) ----

    def _layer_gemms(self, tokens: float) -> float:
        """Layer GEMM time for ``tokens > 0``, without the fixed latency."""
        tab = self._tab_n
        if tab:
            if tokens >= tab[-1]:
                return tokens * self._tab_tail
            i = bisect_right(tab, tokens) - 1
            if i < 0:
                return self._tab_t[0]
            return self._tab_t[i] + (tokens - tab[i]) * self._tab_slope[i]
        t = self._c_layer * (tokens + self._h)
        return t if t > self._w_layer else self._w_layer

    def gemm_time(self, tokens: float) -> float:
        """Decoder-layer GEMMs of one step over ``tokens`` tokens (0 for no tokens)."""
        if tokens <= 0:
            return 0.0
        return self._layer_gemms(tokens) + self._lat_gemm

    def lm_head_time(self, seqs: float) -> float:
        if seqs <= 0:
            return 0.0
        t = self._c_lm * (seqs + self._h)
        return t if t > self._w_lm else self._w_lm

    def prefill_attn_time(self, pairs: float, tokens: float = 0.0, chunks: float = 0.0) -> float:
        """Prefill attention of ``chunks`` chunks with ``tokens`` tokens and ``pairs`` causal pairs in all."""
        if pairs <= 0:
            return 0.0
        return self._attn * pairs + self._attn_tok * tokens + self._lat_pre + self._lat_chunk * chunks

    def decode_attn_time(self, kv_tokens: float, prefill_tokens: float = 0.0) -> float:
        """Decode attention over ``kv_tokens`` in a step that also prefills ``prefill_tokens``."""
        if kv_tokens <= 0:
            return 0.0
        t = self._kv * kv_tokens + self._lat_dec
        return t + self._mix * prefill_tokens / (prefill_tokens + self._mix_half) if self._mix else t

    def gemm_efficiency(self, tokens: float) -> float:
        """Achieved fraction of peak FLOP/s of the layer GEMMs at ``tokens`` tokens per step."""
        t = self.gemm_time(tokens)
        return layer_gemm_flops(self.model, tokens) / (t * self.hardware.peak_flops) if t > 0 else 0.0

    def ridge_tokens(self) -> float:
        """Token count where the layer GEMMs leave the weight-bound regime (no latency): where the
        curve's compute line meets the weight read, or, with a measured table (the times the model
        uses), where the best per-token time adds up to the one-token floor."""
        if self._tab_n:
            return self._tab_t[0] / self._c_layer_best
        return max(self._w_layer / self._c_layer - self._h, 0.0)

    # ---- steps ----

    def step_parts(
        self,
        prefill_tokens: float,
        prefill_attn_pairs: float,
        decode_seqs: float,
        decode_kv_tokens: float,
        prefill_seqs: float,
    ) -> tuple[float, float, float]:
        """(compute_s, memory_s, overhead_s) of one step, from plain numbers: the operators'
        times summed as :meth:`step_time` sums them."""
        n = prefill_tokens + decode_seqs
        s = decode_seqs + prefill_seqs
        c = (
            self.gemm_time(n)
            + self.lm_head_time(s)
            + self.prefill_attn_time(prefill_attn_pairs, prefill_tokens, prefill_seqs)
        )
        m = self.decode_attn_time(decode_kv_tokens, prefill_tokens)
        return c, m, self._t_step + self._t_seq * s + self._ar * n

    def step_time(self, shape: BatchShape, engine: str = "overlap") -> StepTime:
        """Time of one step under ``engine`` ("serial" or "overlap"). The simulator's hot path: the
        operators are priced once, for :meth:`step_parts`' sums and the nano-batch split alike."""
        prefill_tokens, pairs, decode_seqs, kv_tokens, prefill_seqs = shape
        n = prefill_tokens + decode_seqs
        s = decode_seqs + prefill_seqs
        gemm = self.gemm_time(n)
        head = self.lm_head_time(s)
        a_c = self.prefill_attn_time(pairs, prefill_tokens, prefill_seqs)
        a_m = self.decode_attn_time(kv_tokens, prefill_tokens)
        c = gemm + head + a_c
        o = self._t_step + self._t_seq * s + self._ar * n
        if engine == "overlap" and self._shared:
            split = self._split_time(n, a_c, a_m, head)
            return StepTime(c, a_m, o, (split if split < c + a_m else c + a_m) + o)
        return StepTime(c, a_m, o, compose(c, a_m, self._kappa, engine) + o)

    def splits(self, shape: BatchShape) -> bool:
        """Whether the overlapping engine runs ``shape`` as nano-batches: where that is faster than
        running it whole (``shared`` only; the ``constant`` model prices every step overlapped)."""
        if not self._shared:
            return True
        c, m, _ = self.step_parts(
            shape.prefill_tokens,
            shape.prefill_attn_pairs,
            shape.decode_seqs,
            shape.decode_kv_tokens,
            shape.prefill_seqs,
        )
        return self.split_time(shape) < c + m

    def split_time(self, shape: BatchShape) -> float:
        """The ``shared`` interference model's step run as nano-batches, overhead aside: the layer
        GEMMs of the nano-batches beside the step's attention (:mod:`blendsim.profiler.interference`),
        then the LM head. A batch too small to split runs whole."""
        return self._split_time(
            shape.prefill_tokens + shape.decode_seqs,
            self.prefill_attn_time(shape.prefill_attn_pairs, shape.prefill_tokens, shape.prefill_seqs),
            self.decode_attn_time(shape.decode_kv_tokens, shape.prefill_tokens),
            self.lm_head_time(shape.decode_seqs + shape.prefill_seqs),
        )

    def _split_time(self, n: float, a_c: float, a_m: float, head: float) -> float:
        """:meth:`split_time` of a step of ``n`` GEMM tokens whose prefill attention, decode
        attention and LM head take ``a_c``, ``a_m`` and ``head``."""
        if n <= 0:
            return a_c + a_m + head
        k, base, extra = nano_batch_split(n, self._nano)  # nano-batches of two sizes at most
        g = self.gemm_time(base) * (k - extra)
        if extra:
            g += self.gemm_time(base + 1) * extra
        if k < 2 or a_c + a_m <= 0.0:
            return g + a_c + a_m + head
        weights = k * self._w_layer  # each nano-batch streams the layer weights
        u_g = weights / g if weights < g else 1.0
        co = co_run_time(g, a_c, a_m, u_g, self._bw_share, self._compute_share, self._sm_split)
        return co + head + self._sync

    def compose_totals(
        self, gemm: float, head: float, attn_compute: float, attn_memory: float, engine: str
    ) -> float:
        """A workload's totals (layer GEMMs, LM head, prefill attention, decode attention) composed as
        the engine would best run them, for the practical optimum and the step bound: ``serial`` the
        sum; ``constant`` ``max(C, M) + kappa min(C, M)``; ``shared`` the best of running it whole,
        all attention beside the GEMMs, or decode attention beside them and prefill attention alone
        (at the totals the GEMMs are compute-bound, ``u_g = 0``), then the LM head."""
        if engine == "overlap" and self._shared:
            share, cs, split = self._bw_share, self._compute_share, self._sm_split
            best = min(
                gemm + attn_compute + attn_memory,
                co_run_time(gemm, attn_compute, attn_memory, 0.0, share, cs, split),
                co_run_time(gemm, 0.0, attn_memory, 0.0, share, cs, split) + attn_compute,
            )
            return best + head
        return compose(gemm + head + attn_compute, attn_memory, self._kappa, engine)

    def optimal_time(self, total: BatchShape, engine: str = "overlap") -> float:
        """Practical optimum T_o of a workload's totals (hits at the best sharing already removed).

        Composition of the totals at the best GEMM efficiency, no weight-bound regime, no latencies
        (nor decode's extra beside prefill) and no per-step overhead; the all-reduce (linear in
        tokens) and the attention's diagonal tiles (linear in prefill tokens) are kept.
        """
        n = total.prefill_tokens + total.decode_seqs
        s = total.decode_seqs + total.prefill_seqs
        pairs = self._attn * total.prefill_attn_pairs + self._attn_tok * total.prefill_tokens
        m = self._kv * total.decode_kv_tokens
        return (
            self.compose_totals(self._c_layer_best * n, self._c_lm_best * s, pairs, m, engine) + self._ar * n
        )


def compose(compute: float, memory: float, kappa: float, engine: str) -> float:
    """serial: C + M; overlap: max(C, M) + kappa min(C, M)."""
    if engine == "overlap":
        if compute > memory:
            return compute + kappa * memory
        return memory + kappa * compute
    if engine == "serial":
        return compute + memory
    raise unknown("engine", engine, ENGINES)
