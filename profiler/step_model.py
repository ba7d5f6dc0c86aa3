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

from bisect import bisect_right

from blendsim.errors import unknown
from blendsim.profiler.cost import BatchShape, StepTime
from blendsim.profiler.gpus import HardwareSpec
from blendsim.profiler.interference import co_run_time, nano_batch_split
from blendsim.profiler.models import ModelSpec
from blendsim.profiler.step_params import StepParams
from blendsim.profiler.work_counts import (
    allreduce_bytes_per_token,
    decode_kv_bytes,
    layer_gemm_flops,
    layer_weight_bytes,
    lm_head_flops,
    lm_head_weight_bytes,
    prefill_attn_flops,
)

ENGINES = ("serial", "overlap")


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
