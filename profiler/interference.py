"""How the overlapping engine's two sides slow each other down: the interference model.

An overlapping engine (NanoFlow's nano-batches) splits a step's batch into nano-batches and runs the
decoder-layer GEMMs of one nano-batch while another's attention (prefill and decode) runs beside it,
layer by layer. Run alone, the GEMM side takes ``g`` seconds and the attention side ``a``; run
together each progresses slower than alone, because they share the device:

* **memory bandwidth.** Each side spends a fraction ``u`` of its solo time streaming memory at the
  bandwidth it reaches alone (the GEMM side its weights, once per nano-batch; the attention side
  the decode KV). Together they ask for ``u_g + u_a`` of that bandwidth; the device delivers
  ``bandwidth_share`` of it (1 on a GPU, whose HBM one memory-bound kernel already saturates; more
  on a CPU, where one core alone cannot pull the socket's bandwidth). Past that, the demand is
  ``sigma = max(1, (u_g + u_a) / bandwidth_share)`` times the supply, and memory-bound time
  stretches by ``sigma``;
* **compute units.** Compute-bound work runs ``1 + compute_share`` times slower beside the other
  side (shared caches, SMT or SM contention). Where the two sides also split one pool of compute
  units (a GPU's SMs: ``sm_split`` of them to the attention side, the rest to the GEMMs) a side's
  compute-bound work runs at its share, ``(1 + compute_share) / (1 - sm_split)`` for the GEMMs and
  ``(1 + compute_share) / sm_split`` for attention; ``sm_split = 0`` means each side has compute
  units of its own (a CPU core each).

The GEMM side is compute-bound work that also streams its weights: ``g_co = g max(s_g, u_g sigma)``.
The attention side is prefill attention (compute-bound, ``a_c``) then decode attention
(memory-bound, ``a_m``, its few FLOPs hidden under its reads): ``a_co = a_c s_a + a_m sigma``.
Whichever side finishes first, the other then runs alone for the rest of its work:

    g_co <= a_co:  T = g_co + a (1 - g_co / a_co)        else  T = a_co + g (1 - a_co / g_co)

Limits (tests): no contention (``u`` small, no compute sharing) gives ``max(g, a)``, perfect
overlap; two memory-bound sides on one bandwidth (``u_g = 1``, ``a_c = 0``, ``bandwidth_share = 1``)
give ``g + a``, the serial time; so do two compute-bound sides on split SMs (``compute_share = 0``:
the SMs' total throughput is conserved) or on their own units at half speed (``compute_share = 1``).
``T`` is never below ``max(g, a)``, and with ``sm_split = 0`` never above ``g + a``. Splitting the
batch costs the GEMM side too: each nano-batch reads the weights and pays the GEMMs' per-call
inefficiency, which the step model prices by running its GEMM curve once per nano-batch
(:mod:`blendsim.profiler.step_model`), and the hand-offs between the sides cost ``sync_s`` per step.
So the engine runs a step split only where that is faster than running it whole.

``constant`` is the model this replaced, kept for sensitivity studies: ``max(C, M) + kappa min(C, M)``
over the step's compute and memory time, one number for every shape.
"""

from __future__ import annotations

INTERFERENCE_KINDS = ("constant", "shared")


def co_run_time(
    g: float,
    a_compute: float,
    a_memory: float,
    u_g: float,
    bandwidth_share: float,
    compute_share: float,
    sm_split: float = 0.0,
) -> float:
    """Seconds to run the GEMM side (``g`` alone, bandwidth fraction ``u_g``) and the attention side
    (``a_compute`` of prefill attention, ``a_memory`` of decode attention, alone) at once (module
    docstring). Either side may be 0: then nothing overlaps."""
    a = a_compute + a_memory
    if g <= 0.0 or a <= 0.0:
        return g + a
    demand = u_g + a_memory / a
    sigma = demand / bandwidth_share if demand > bandwidth_share else 1.0
    slow = 1.0 + compute_share
    s_g, s_a = (slow / (1.0 - sm_split), slow / sm_split) if sm_split > 0.0 else (slow, slow)
    g_co = g * (u_g * sigma if u_g * sigma > s_g else s_g)
    a_co = a_compute * s_a + a_memory * sigma
    if g_co <= a_co:
        return g_co + a * (1.0 - g_co / a_co)
    return a_co + g * (1.0 - a_co / g_co)


def nano_batch_split(tokens: float, nano_batches: int) -> tuple[int, int, int]:
    """How a step of ``tokens`` GEMM tokens splits into nano-batches, as ``(k, base, extra)``: ``k``
    nano-batches (at most ``nano_batches``; a one-token step cannot be split), ``extra`` of them
    with ``base + 1`` whole tokens and the rest with ``base``."""
    k = int(min(nano_batches, max(tokens, 1.0)))
    base, extra = divmod(int(tokens), k)
    return k, base, extra


def nano_batch_sizes(tokens: float, nano_batches: int) -> list[float]:
    """Token counts of the nano-batches of :func:`nano_batch_split`, the larger first."""
    k, base, extra = nano_batch_split(tokens, nano_batches)
    return [float(base + 1)] * extra + [float(base)] * (k - extra)
