"""EngineConfig: every engine decision the paper leaves open, as a named, documented parameter.

The defaults describe the paper's setting (Llama-3-8B on one A100-80GB, NanoFlow-like overlap).
``kv_capacity_tokens`` derives the KV cache size the way real engines do: memory left after the
weights and an activation reserve.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from blendsim.options import at_least, check_fields, finite_at_least, in_range, option, positive_multiple

ENGINES = ("overlap", "serial")
ADMISSION_RULES = ("expected", "final")
RIGHT_ADMISSION_RULES = ("projected_peak", "expected")

# blendserve.md §4.2 (Figure 6): "80 GB GPU, 20 GB reserved for weights and buffers, so M = 60 GB".
# Llama-3-8B's weights are 8.03e9 params x 2 bytes = 16.06 GB, so the activation/buffer reserve that
# reproduces the paper's 60 GB of KV is 80 - 16.06 - 60 = 3.94 GB.
PAPER_ACTIVATION_RESERVE_BYTES = 80e9 - 8.03e9 * 2 - 60e9


@dataclass(frozen=True)
class EngineConfig:
    """How one replica runs. Invariant: every field passes its option's check (the ``option(...)``
    of each field below: its default, help and check; :mod:`blendsim.options` makes the CLI's
    options from them). ``token_budget`` is a positive multiple of 128 (the paper keeps batch sizes
    multiples of 128); ``0 < expected_fraction <= 1``.

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
        unit means, each admission spending its whole prompt (docs/simulator.md). On the
        ``serial`` engine the credit is always per request, with the critical-path exception of
        ``blend_admission`` step 5 (a property of the engine: nothing to overlap, steps to save).
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

    engine: str = option(
        "overlap",
        "step composition: overlap (NanoFlow-like: GEMMs overlap decode "
        "attention) or serial (vLLM/SGLang-like)",
        choices=ENGINES,
    )
    token_budget: int = option(
        8192, "tokens per step, decodes plus prefill chunks, a multiple of 128", check=positive_multiple(128)
    )
    max_running: int = option(2048, "cap on requests holding KV at once", check=at_least(1))
    block_size: int = option(
        1,
        "KV page size in tokens; prefix hits are whole pages (SGLang's radix "
        "tree: 1; vLLM: 16 on GPUs, 128 on CPUs)",
        check=at_least(1),
    )
    activation_reserve_bytes: float = option(
        PAPER_ACTIVATION_RESERVE_BYTES,
        "device memory kept for activations and buffers",
        check=finite_at_least(0),
        cli=False,
    )
    admission: str = option(
        "expected",
        "KV charged at admission: expected (new prompt blocks + "
        "expected-fraction of the estimated output) or final (all of it)",
        choices=ADMISSION_RULES,
    )
    expected_fraction: float = option(
        0.5,
        "share of the estimated output the expected rule charges, in (0, 1]",
        check=in_range(0, 1, low_open=True),
    )
    blend_pacing: bool = option(
        True,
        "blend: pace the compute-heavy stream against the resident memory "
        "work (off: the paper's steady-state budgets)",
        flag="pacing",
    )
    blend_refresh_target: bool = option(
        False, "blend: recompute the target density from the units still unscanned", flag="refresh-target"
    )
    right_admission: str = option(
        "projected_peak",
        "blend: how the memory-heavy stream checks its "
        "partition: projected_peak (the residents' future peak KV) or expected "
        "(charges)",
        choices=RIGHT_ADMISSION_RULES,
    )
    blend_chunk_pacing: bool = option(
        True,
        "blend: cap each paced step's prefill at the paced GEMM target "
        "(off: prefill takes the whole token budget)",
        flag="chunk-pacing",
    )
    blend_request_credit: bool = option(
        False,
        "blend: spend the right stream's E8 budget per request, (p + d/2) d KV token-steps each",
        flag="request-credit",
    )
    kv_capacity_override: int | None = option(
        None,
        "KV tokens per replica, in place of the capacity derived "
        "from memory, weights and the activation reserve",
        flag="kv-capacity-tokens",
        check=at_least(1),
        metavar="TOKENS",
    )

    def __post_init__(self) -> None:
        check_fields(self)

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
