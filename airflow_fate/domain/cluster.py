"""GPU cluster inventory: GPU types, nodes and interconnect (the ``cluster.yaml`` format).

Bandwidths are GB/s (bytes), memory GiB. GPUs are addressed two ways: by ``(node, index
within node)`` in files, results and the UI, and by a dense global index in hot loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1

MAX_NODE_GPUS = 1024
"""Most GPUs one node may declare: more than any machine has (an NVL72 rack is 72), low
enough that a typo such as ``gpu_count: 80000000`` is refused instead of building a
GPU table that exhausts memory (found by fuzzing)."""

DEFAULT_POD_START_S = 5.0
"""Seconds from creating a GPU pod to its worker taking work, when ``cluster.yaml`` does not
say: scheduling, container start with the image already on the node, and the worker's
Python and torch imports. Measure yours (pod created -> Ready) and set ``pod_start_s``."""


class _Strict(BaseModel):
    """Unknown keys are typos; ``.inf`` and ``.nan`` are never a size, rate or count."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GpuType(_Strict):
    """One kind of accelerator.

    ``usable_fraction`` of memory holds resident weights plus the running stage's KV;
    a further ``prefix_kv_fraction`` is the budget for prefix KV kept between stages; the
    rest goes to the CUDA context, activations and fragmentation.
    """

    memory_gib: float = Field(gt=0)
    relative_speed: float = Field(gt=0, description="throughput relative to an H100-80GB")
    usable_fraction: float = Field(default=0.9, gt=0, le=1)
    prefix_kv_fraction: float = Field(default=0.05, ge=0, lt=1)

    @property
    def usable_gib(self) -> float:
        return self.memory_gib * self.usable_fraction


class Interconnect(_Strict):
    """Cluster-wide link speeds in GB/s."""

    host_to_gpu_gbps: float = Field(gt=0, description="host memory -> GPU (PCIe)")
    nvlink_gbps: float = Field(gt=0, description="GPU -> GPU inside an NVLink node")
    local_disk_gbps: float = Field(gt=0, description="node-local NVMe read")
    remote_store_gbps: float = Field(gt=0, description="object store / shared FS pull")


class NodeSpec(_Strict):
    """A machine with ``gpu_count`` GPUs of one type."""

    name: str = Field(min_length=1)
    gpu_type: str
    gpu_count: int = Field(gt=0, le=MAX_NODE_GPUS)
    nvlink: bool = False
    host_cache_gib: float = Field(ge=0)
    network_gbps: float = Field(gt=0)
    models_on_disk: tuple[str, ...] = Field(
        default=(),
        description="models (models.yaml names) already on this node's local disk when the "
        "scheduler starts, e.g. pre-pulled; every other model comes from the remote store "
        "on its first load here",
    )
    cpu_cores: int | None = Field(
        default=None,
        ge=1,
        description="for virtual CPU devices of one thread each: the CPU cores they share. "
        "While n > cpu_cores of them work at once, each works at cpu_cores / n of its "
        "speed. Omitted (GPUs): each device works at its own speed",
    )


class Cluster(_Strict):
    """The ``cluster.yaml`` document."""

    version: int = FORMAT_VERSION
    gpu_types: dict[str, GpuType]
    interconnect: Interconnect
    nodes: list[NodeSpec] = Field(min_length=1)
    pod_start_s: float = Field(
        default=DEFAULT_POD_START_S,
        ge=0,
        description="seconds from creating a GPU pod to its worker taking work (Kubernetes)",
    )

    def reference_errors(self) -> list[tuple[str, str]]:
        """Cross-field problems as ``(path, reason)`` pairs; empty when the cluster is sound."""
        errors: list[tuple[str, str]] = []
        if self.version != FORMAT_VERSION:
            errors.append(
                ("version", f"unsupported version {self.version}; expected {FORMAT_VERSION}")
            )
        seen: set[str] = set()
        for i, node in enumerate(self.nodes):
            if node.name in seen:
                errors.append((f"nodes[{i}].name", f"duplicate node name {node.name!r}"))
            seen.add(node.name)
            if node.gpu_type not in self.gpu_types:
                known = ", ".join(sorted(self.gpu_types))
                errors.append(
                    (f"nodes[{i}].gpu_type", f"unknown gpu_type {node.gpu_type!r} (known: {known})")
                )
        return errors

    @cached_property
    def gpus(self) -> tuple[GpuRef, ...]:
        """Every GPU in node order; ``gpus[g].index`` is the dense global index ``g``."""
        refs: list[GpuRef] = []
        for n, node in enumerate(self.nodes):
            for local in range(node.gpu_count):
                refs.append(GpuRef(index=len(refs), node=n, local=local))
        return tuple(refs)

    @cached_property
    def node_gpus(self) -> tuple[tuple[int, ...], ...]:
        """Global GPU indices of each node, by node index."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for ref in self.gpus:
            out[ref.node].append(ref.index)
        return tuple(tuple(x) for x in out)

    def gpu_type_of_node(self, node: int) -> GpuType:
        return self.gpu_types[self.nodes[node].gpu_type]


@dataclass(frozen=True, slots=True)
class GpuRef:
    """A GPU's address: dense global ``index``, owning ``node`` index, ``local`` index."""

    index: int
    node: int
    local: int
