"""Hardware specifications: the datasheet peaks and links of one accelerator (``HardwareSpec``,
frozen, scaled by tensor parallelism), each built-in number with its public source."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from blendsim.errors import UserError, unknown
from blendsim.options import is_finite_number, is_integer


@dataclass(frozen=True)
class HardwareSpec:
    """Datasheet peaks of one accelerator (dense, no sparsity), scaled by tensor parallelism ``tp``.

    The links are per GPU and one direction (a datasheet's "bidirectional" figure halved): the
    GPU-to-GPU fabric (NVLink) and the host link (PCIe). A latency of 0 with a bandwidth of 0 means
    the link is not known (a measured profile, a CPU)."""

    name: str
    peak_flops: float  # dense FP16/BF16 tensor-core FLOP/s
    mem_bandwidth: float  # bytes/s
    mem_capacity: float  # bytes
    interconnect_bandwidth: float  # NVLink bytes/s per GPU, one direction
    source: str
    tp: int = 1
    interconnect_latency_s: float = 0.0  # one GPU-to-GPU copy's fixed cost over NVLink
    pcie_bandwidth: float = 0.0  # PCIe bytes/s per GPU, one direction
    pcie_latency_s: float = 0.0  # one peer copy's fixed cost over PCIe

    def __post_init__(self) -> None:
        """Peaks and capacity positive and finite, the interconnect finite and >= 0, ``tp`` >= 1."""
        for name in ("peak_flops", "mem_bandwidth", "mem_capacity", "interconnect_bandwidth"):
            value: Any = getattr(self, name)
            low = 0.0 if name == "interconnect_bandwidth" else None
            ok = is_finite_number(value)
            if not ok or (value < low if low is not None else value <= 0):
                bound = ">= 0" if low is not None else "> 0"
                raise UserError(
                    f"hardware {self.name!r}: {name} must be a finite number {bound}, got {value!r}"
                )
        if not is_integer(self.tp) or self.tp < 1:
            raise UserError(f"hardware {self.name!r}: tp must be an integer >= 1, got {self.tp!r}")

    def with_tp(self, tp: int) -> HardwareSpec:
        """k GPUs under tensor parallelism: compute, bandwidth and memory scale by k (links stay per GPU)."""
        if not is_integer(tp) or tp < 1:
            raise UserError(f"tensor parallelism must be an integer >= 1, got {tp!r}")
        base = self.tp
        return replace(
            self,
            peak_flops=self.peak_flops / base * tp,
            mem_bandwidth=self.mem_bandwidth / base * tp,
            mem_capacity=self.mem_capacity / base * tp,
            tp=tp,
        )


# Link latencies: the fixed cost of one peer-to-peer copy, of the same order on every NVLink or PCIe
# GPU (sources in _LATENCIES, which every built-in's source carries). A KV transfer is megabytes
# (128 KiB per Llama-3-8B token), so its bandwidth term dominates either way.
NVLINK_LATENCY_S = 2e-6
PCIE_LATENCY_S = 5e-6
_LATENCIES = (
    "copy latency 2 us over NVLink (1.8-2.3 us measured by CUDA's p2pBandwidthLatencyTest, "
    "github.com/NVIDIA/cuda-samples/issues/230), 5 us over PCIe (4.1-6.1 us measured by "
    "github.com/lukealonso/p2pmark)"
)

GPUS: dict[str, HardwareSpec] = {
    g.name: g
    for g in (
        HardwareSpec(
            "a100-80g",
            312e12,
            2.039e12,
            80e9,
            300e9,
            "NVIDIA A100 datasheet (SXM4 80GB): 312 TFLOPS BF16 dense, 2,039 GB/s HBM2e, "
            "NVLink 600 GB/s bidirectional, PCIe Gen4 64 GB/s bidirectional; " + _LATENCIES,
            interconnect_latency_s=NVLINK_LATENCY_S,
            pcie_bandwidth=32e9,
            pcie_latency_s=PCIE_LATENCY_S,
        ),
        HardwareSpec(
            "h100-sxm",
            989.4e12,
            3.35e12,
            80e9,
            450e9,
            "NVIDIA H100 datasheet (SXM5): 1,979 TFLOPS BF16 with sparsity (989.4 dense), "
            "3.35 TB/s HBM3, NVLink 900 GB/s bidirectional, PCIe Gen5 128 GB/s bidirectional; " + _LATENCIES,
            interconnect_latency_s=NVLINK_LATENCY_S,
            pcie_bandwidth=64e9,
            pcie_latency_s=PCIE_LATENCY_S,
        ),
        HardwareSpec(
            "h200",
            989.4e12,
            4.8e12,
            141e9,
            450e9,
            "NVIDIA H200 datasheet (SXM): 1,979 TFLOPS BF16 with sparsity (989.4 dense), "
            "4.8 TB/s HBM3e, 141 GB, NVLink 900 GB/s bidirectional, PCIe Gen5 128 GB/s "
            "bidirectional; " + _LATENCIES,
            interconnect_latency_s=NVLINK_LATENCY_S,
            pcie_bandwidth=64e9,
            pcie_latency_s=PCIE_LATENCY_S,
        ),
    )
}


def get_gpu(name: str) -> HardwareSpec:
    if name not in GPUS:
        raise unknown("GPU", name, list(GPUS))
    return GPUS[name]
