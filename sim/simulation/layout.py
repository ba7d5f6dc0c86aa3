"""DisaggConfig: a disaggregated layout, P prefill replicas and D decode replicas, and its KV link.

The link a request's KV crosses from its prefill replica to its decode replica is one of the
profile's hardware links (:class:`~blendsim.profiler.gpus.HardwareSpec`, each with its datasheet
source): ``nvlink`` (the GPU-to-GPU fabric: 300 GB/s each way on an A100, NVLink 3) or ``pcie``
(32 GB/s each way on an A100, PCIe 4.0 x16), or ``ideal`` (free and instant: a bound). A bandwidth
or latency given in the config replaces the link's. Moving ``b`` bytes takes ``latency + b /
bandwidth``; a replica of ``tp`` GPUs moves its KV shards over ``tp`` links at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from blendsim.errors import UserError
from blendsim.options import at_least, check_fields, finite_above, finite_at_least, option
from blendsim.profiler.gpus import HardwareSpec

LINKS = ("nvlink", "pcie", "ideal")
_LAYOUT = re.compile(r"(\d+)x(\d+)|(\d+)p(\d+)d", re.IGNORECASE)


@dataclass(frozen=True)
class DisaggConfig:
    """P prefill and D decode replicas (:mod:`blendsim.sim.simulation.disagg`) and their KV link.
    Invariant: every field passes its option's check; ``prefill, decode >= 1``.

    prefill, decode: replicas of each role (the command line's ``--disagg PxD``).
    link: the profile's link the KV crosses: ``nvlink``, ``pcie`` or ``ideal`` (no cost).
    link_bandwidth: bytes/s each way per GPU, in place of the link's (a what-if: another fabric).
    link_latency_s: seconds per transfer, in place of the link's.
    """

    prefill: int = option(1, "prefill replicas", check=at_least(1), cli=False)
    decode: int = option(1, "decode replicas", check=at_least(1), cli=False)
    link: str = option(
        "nvlink",
        "the link KV moves over from a prefill to a decode replica: the profile's NVLink or PCIe "
        "(bandwidth and latency per GPU, one direction), or ideal (free)",
        choices=LINKS,
        flag="kv-link",
    )
    link_bandwidth: float | None = option(
        None,
        "KV link bytes/s per GPU and direction, in place of the link's",
        check=finite_above(0),
        flag="kv-link-bandwidth",
        metavar="BYTES/S",
    )
    link_latency_s: float | None = option(
        None,
        "KV link seconds per transfer, in place of the link's",
        check=finite_at_least(0),
        flag="kv-link-latency",
        metavar="S",
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def replicas(self) -> int:
        return self.prefill + self.decode

    @property
    def label(self) -> str:
        """The paper's name of the layout, e.g. ``1P2D``."""
        return f"{self.prefill}P{self.decode}D"


def not_disaggregable(policy: str, engine_side: bool = False) -> UserError:
    """The error for a policy a disaggregated layout cannot run: a two-sided one (blend), or one
    whose order the engine makes at admission (``engine_side``: lpm)."""
    why = (
        "re-sorts each replica's waiting queue on that replica's own radix cache"
        if engine_side
        else "admits from both ends of its plan to blend compute and memory on one replica"
    )
    return UserError(
        f"policy {policy!r} {why}; a disaggregated layout's prefill replicas admit one shared "
        f"stream in a plan's order (fifo, dfs, balance, dfs-tuned, batchllm or dfs-weight)"
    )


def parse_layout(text: str) -> tuple[int, int]:
    """``"PxD"`` (or the paper's ``"PpDd"``, e.g. ``1P2D``) -> ``(P, D)``, both at least 1."""
    match = _LAYOUT.fullmatch(text.strip())
    if match is None:
        raise UserError(f"expected PxD (P prefill and D decode replicas, e.g. 1x2 or 1P2D), got {text!r}")
    groups = [g for g in match.groups() if g is not None]
    prefill, decode = int(groups[0]), int(groups[1])
    if prefill < 1 or decode < 1:
        raise UserError(f"needs at least one prefill and one decode replica, got {text!r}")
    return prefill, decode


@dataclass(frozen=True)
class KvLink:
    """One direction of one replica's KV link: ``bandwidth`` bytes/s (inf: instant) and
    ``latency_s`` per transfer; ``source`` says where the numbers come from."""

    name: str
    bandwidth: float
    latency_s: float
    source: str

    def seconds(self, nbytes: float) -> float:
        """Time to move ``nbytes`` over the link."""
        return self.latency_s + (nbytes / self.bandwidth if math.isfinite(self.bandwidth) else 0.0)

    def to_dict(self) -> dict[str, object]:
        return {"link": self.name, "bandwidth": self.bandwidth, "latency_s": self.latency_s}


def kv_link(hardware: HardwareSpec, config: DisaggConfig) -> KvLink:
    """The link ``config`` names, from ``hardware`` (module docstring). UserError when the profile
    does not know that link's bandwidth and the config gives none."""
    if config.link == "ideal":
        bandwidth, latency, source = math.inf, 0.0, "ideal: KV moves instantly (a bound)"
    elif config.link == "nvlink":
        bandwidth, latency = hardware.interconnect_bandwidth, hardware.interconnect_latency_s
        source = hardware.source
    else:
        bandwidth, latency, source = hardware.pcie_bandwidth, hardware.pcie_latency_s, hardware.source
    if config.link_bandwidth is not None:
        bandwidth, source = config.link_bandwidth, "given bandwidth"
    if config.link_latency_s is not None:
        latency = config.link_latency_s
    if not bandwidth > 0:
        raise UserError(
            f"profile hardware {hardware.name!r} gives no {config.link} bandwidth for the KV link; "
            f"choose another link or give its bandwidth"
        )
    return KvLink(config.link, bandwidth * hardware.tp, latency, source)
