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
  ``sigma = max(1, (u_g + u_a) / bandwidth_share)`` times the supply, and a side's memory-bound
  time stretches by ``sigma``;
* **compute units and caches.** Each side's compute-bound work runs ``1 + compute_share`` times
  slower beside the other (SMs or cores given to the other side, shared caches).

So, co-running, a side takes ``x_co = x max(1 + compute_share, u_x sigma)``. Whichever side
finishes first, the other then runs alone for the rest of its work:

    g_co <= a_co:  T = g_co + a (1 - g_co / a_co)        else  T = a_co + g (1 - a_co / g_co)

Limits (tests): no contention (``u`` small, ``compute_share`` 0) gives ``max(g, a)``, perfect
overlap; two memory-bound sides on one bandwidth (``u_g = u_a = 1``, ``bandwidth_share = 1``) give
``g + a``, the serial time; ``T`` is never below ``max(g, a)`` nor, for ``compute_share <= 1`` and
``bandwidth_share >= 1``, above ``g + a``. Splitting the batch costs the GEMM side too: each
nano-batch reads the weights and pays the GEMMs' per-call inefficiency, which the step model
prices by running its GEMM curve once per nano-batch (:mod:`blendsim.profiler.step_model`), and
the hand-offs between the sides cost ``sync_s`` per step.

``constant`` is the model this replaced, kept for sensitivity studies: ``max(C, M) + kappa min(C, M)``
over the step's compute and memory time, one number for every shape.
"""

from __future__ import annotations

INTERFERENCE_KINDS = ("constant", "shared")


def co_run_time(
    g: float, a: float, u_g: float, u_a: float, bandwidth_share: float, compute_share: float
) -> float:
    """Seconds to run the GEMM side (``g`` alone, bandwidth fraction ``u_g``) and the attention side
    (``a``, ``u_a``) at once (module docstring). Either side may be 0: then nothing overlaps."""
    if g <= 0.0 or a <= 0.0:
        return g + a
    demand = u_g + u_a
    sigma = demand / bandwidth_share if demand > bandwidth_share else 1.0
    slow = 1.0 + compute_share
    g_co = g * (u_g * sigma if u_g * sigma > slow else slow)
    a_co = a * (u_a * sigma if u_a * sigma > slow else slow)
    if g_co <= a_co:
        return g_co + a * (1.0 - g_co / a_co)
    return a_co + g * (1.0 - a_co / g_co)


def nano_batch_sizes(tokens: float, nano_batches: int) -> list[float]:
    """Token counts of the nano-batches a step of ``tokens`` GEMM tokens splits into: at most
    ``nano_batches``, nearly equal, whole tokens (a one-token step cannot be split)."""
    k = int(min(nano_batches, max(tokens, 1.0)))
    base, extra = divmod(int(tokens), k)
    return [float(base + 1)] * extra + [float(base)] * (k - extra)
