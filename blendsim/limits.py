"""The largest values a run can mean, checked before anything is allocated.

* Token lengths fit in int32 (:data:`INT32_MAX`): the planner and the step record keep them so, and
  no model's KV for 2^31 tokens fits any cache. (A model's context length is no bound: the paper's
  videos exceed it.) Whether one request's KV fits the cache is the simulator's check
  (:func:`blendsim.sim.simulation.capacity.check_requests_fit`).
* Request counts and data parallelism: a run's host memory grows with the requests, and with the
  requests again per replica (every replica's engine keeps a slot per request of the trace).
  :func:`check_run_size` compares the estimate with the memory this host has free, and a DP degree
  with the requests it would share.

The per-request figures are peak resident memory measured with ``getrusage`` on the development
machine (trace1 at 20,000 and 80,000 requests, fifo and blend, llama-3-8b on a100-80g): generating
a trace costs 0.40 KiB per request, simulating it 0.44-0.66 KiB more, each further replica 0.33 KiB
(DP 256 against DP 1 at 20,000 requests). The constants below round those up by about half, so
the check refuses what cannot run and lets through what can.
"""

from __future__ import annotations

import os

from blendsim.errors import UserError

INT32_MAX = 2**31 - 1
BYTES_PER_REQUEST = 1700  # generate + plan + simulate, one replica (measured 1.1 KiB; module docstring)
BYTES_PER_REQUEST_REPLICA = 512  # each replica's engine state per request of the trace (measured 0.33 KiB)
GIB = 2.0**30


def host_memory_available() -> int:
    """Bytes of memory this host can give a new run: Linux's MemAvailable, else all physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (OSError, ValueError, AttributeError):
        return 2**62  # unknown: no limit from memory


def run_bytes(requests: int, dp: int = 1) -> int:
    """Estimated peak host memory of generating and simulating ``requests`` requests on ``dp`` replicas."""
    return requests * (BYTES_PER_REQUEST + BYTES_PER_REQUEST_REPLICA * max(dp - 1, 0))


def check_run_size(requests: int, dp: int = 1, *, at_once: int = 1, subject: str = "") -> None:
    """UserError when ``dp`` exceeds ``requests`` or ``at_once`` runs of ``requests`` requests on
    ``dp`` replicas need more host memory than is free; the message states the limit. ``subject``
    names the requests (default: ``--requests N``). A count below 1 passes: whether a count is
    positive is the check of the code that uses it."""
    if requests < 1:
        return
    subject = subject or f"--requests {requests:,}"
    if dp > requests:
        raise UserError(f"--dp {dp} is more replicas than {subject} they would share; at most {requests:,}")
    need = run_bytes(requests, dp) * at_once
    free = host_memory_available()
    if need <= free:
        return
    per = run_bytes(1, dp) * at_once
    replicas = f" on {dp} replicas" if dp > 1 else ""
    runs = f", {at_once} runs at once," if at_once > 1 else ""
    raise UserError(
        f"{subject}{replicas}{runs} would need about {need / GIB:,.1f} GiB of host memory "
        f"({per:,} bytes per request), more than the {free / GIB:,.1f} GiB this machine has free: "
        f"at most {free // per:,} requests" + (" (fewer replicas allow more)" if dp > 1 else "")
    )


def check_length(value: int, what: str) -> None:
    """A token length must fit in int32 (module docstring)."""
    if value > INT32_MAX:
        raise UserError(f"{what} {value} is beyond the longest length blendsim models ({INT32_MAX}, int32)")
