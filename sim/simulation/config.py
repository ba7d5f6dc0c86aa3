"""EngineConfig: every engine decision the paper leaves open, as a named, documented parameter.

The defaults describe the paper's setting (Llama-3-8B on one A100-80GB, NanoFlow-like overlap).
``kv_capacity_tokens`` derives the KV cache size the way real engines do: memory left after the
weights and an activation reserve.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from blendsim.errors import UserError, unknown

ENGINES = ("overlap", "serial")
ADMISSION_RULES = ("expected", "final")
RIGHT_ADMISSION_RULES = ("projected_peak", "expected")

# blendserve.md §4.2 (Figure 6): "80 GB GPU, 20 GB reserved for weights and buffers, so M = 60 GB".
# Llama-3-8B's weights are 8.03e9 params x 2 bytes = 16.06 GB, so the activation/buffer reserve that
# reproduces the paper's 60 GB of KV is 80 - 16.06 - 60 = 3.94 GB.
PAPER_ACTIVATION_RESERVE_BYTES = 80e9 - 8.03e9 * 2 - 60e9


@dataclass(frozen=True)
class EngineConfig:
    """How one replica runs. Invariants: ``token_budget`` is a positive multiple of 128 (the paper
    keeps batch sizes multiples of 128); ``0 < expected_fraction <= 1``.

    engine: step-time composition, ``overlap`` (NanoFlow: GEMM overlaps decode attention) or
        ``serial`` (vLLM/SGLang: operators run one after another).
    token_budget: tokens per step, decode tokens (one per running decode) plus prefill chunk tokens.
    max_running: cap on requests holding KV (decoding or prefilling) at once.
    block_size: KV page size in tokens; prefix-cache hits are whole pages and KV is allocated in
        pages. Default 1: the paper's engine keeps its prefix cache in SGLang's radix tree, which
        matches token by token (page size 1 by default), so sharing reaches the trace's optimum.
        Set it to the page size of an engine being compared with (vLLM: 16 on GPU, 128 on CPU;
        the executor does this).
    activation_reserve_bytes: device memory kept for activations and buffers, besides weights.
    admission: how much KV a request is charged when admitted: ``expected`` charges its new prompt
        blocks plus ``expected_fraction`` (1/2) of its estimated output, the average footprint over
        its life that the paper's E8 uses, with preemption as the safety net; ``final`` charges the
        prompt plus the whole estimated output, so accurate estimates never preempt.
    blend_pacing: blend only. Pace the compute-heavy (left) stream so the left units run out when
        the memory-heavy (right) units do, from the right work still to run and the KV actually
        resident (design.md "The critical path"); ``False`` keeps the paper's steady-state budgets.
    blend_chunk_pacing: blend with ``blend_pacing`` only. While the compute stream is paced, cap each
        step's prefill tokens at the paced GEMM target less the step's decodes, so admitted prompts
        are chunked over the following steps (the paper's ``C_L, C_R`` are prefill tokens *per
        step*, prompts chunked: blendserve.md §4.3) instead of running in one burst followed by
        decode-only steps below the weight-bound ridge, which pay the GEMM weight read whatever
        their token count (``False``: prefill takes the step's whole token budget, vLLM-style).
    blend_request_credit: blend only. ``True``: the right stream's E8 credit is spent per request:
        ``M_R`` KV token-steps per step, each admission costing its own ``(p + d_hat/2) d_hat``, E8
        with the request's estimates in place of its unit's means (identical for a uniform unit);
        a long video is followed by the gap its own KV-time needs. It staggers the longest videos
        at 400K (+1 %) but pushes late ones past the critical path at 40K (trace2 -4 %), so the
        default is ``False``: the paper's ``C_R = N_R p_R / d_R`` prompt tokens per step from the
        unit means, each admission spending its whole prompt (docs/simulator.md).
    right_admission: blend only, how the memory-heavy (right) stream checks its partition ``M_R``.
        ``projected_peak``: admit a right request only if the projected peak KV of the right
        side's residents plus it stays within ``M_R``, each resident growing one token per step to
        its prompt + estimated output and freeing it all at its estimated end
        (:mod:`blendsim.sim.simulation.projected_peak`); with accurate estimates the right side never outgrows
        its partition, however the long requests line up. ``expected``: the side's charges (the
        ``admission`` rule's) or its actual KV, whichever is larger, plus the candidate's charge,
        within ``M_R``: long requests admitted close together can later outgrow the partition
        together (the first engineer's rule; measured beside it in docs/simulator.md). The global
        KV check of ``admission`` applies under both.
    kv_capacity_override: KV tokens per replica, replacing the derived capacity (tests, what-ifs).
    blend_refresh_target: blend only. Recompute the target density rho(rt) from the units still
        unscanned (the paper keeps it constant; ``False``).
    """

    engine: str = "overlap"
    token_budget: int = 8192
    max_running: int = 2048
    block_size: int = 1
    activation_reserve_bytes: float = PAPER_ACTIVATION_RESERVE_BYTES
    admission: str = "expected"
    expected_fraction: float = 0.5
    blend_pacing: bool = True
    blend_refresh_target: bool = False
    right_admission: str = "projected_peak"
    blend_chunk_pacing: bool = True
    blend_request_credit: bool = False
    kv_capacity_override: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise unknown("engine", self.engine, ENGINES)
        if self.admission not in ADMISSION_RULES:
            raise unknown("admission rule", self.admission, ADMISSION_RULES)
        if self.right_admission not in RIGHT_ADMISSION_RULES:
            raise unknown("right admission rule", self.right_admission, RIGHT_ADMISSION_RULES)
        if self.token_budget < 128 or self.token_budget % 128:
            raise UserError(f"token budget must be a positive multiple of 128, got {self.token_budget}")
        if self.max_running < 1:
            raise UserError(f"max running requests must be >= 1, got {self.max_running}")
        if self.block_size < 1:
            raise UserError(f"KV block size must be >= 1, got {self.block_size}")
        if not 0 < self.expected_fraction <= 1:
            raise UserError(f"expected_fraction must be in (0, 1], got {self.expected_fraction}")

    @property
    def reserve_fraction(self) -> float:
        """Fraction of the estimated output charged at admission."""
        return 1.0 if self.admission == "final" else self.expected_fraction

    def with_(self, **changes: object) -> EngineConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def kv_capacity_tokens(
    mem_capacity: float, weight_bytes: float, kv_bytes_per_token: float, config: EngineConfig
) -> int:
    """KV tokens that fit: (memory - weights - activation reserve) / bytes per token, whole blocks."""
    free = mem_capacity - weight_bytes - config.activation_reserve_bytes
    tokens = int(free // kv_bytes_per_token)
    return tokens - tokens % config.block_size
