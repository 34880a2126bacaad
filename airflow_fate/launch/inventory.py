"""The GPU inventory: the planner's `Cluster` plus each GPU's UUID and PCI id.

The planner speaks in dense global GPU indices; a pod must name its GPUs by UUID. An
`Inventory` joins the two. It has two sources:

* files (`load_inventory`): ``cluster.yaml`` plus ``devices.yaml``;
* the cluster itself (`inventory_from_nodes`): GPU Feature Discovery labels give each
  node's product, memory and count; an inventory ConfigMap gives per-GPU UUID, index and
  PCI bus id (GFD does not label those) and the facts no label carries (interconnect,
  host cache, NVLink, relative speed).

This module is pure (no API calls, no Kubernetes client): the client-facing
`airflow_fate.launch.kubernetes.discovery` reads the nodes and ConfigMap and calls
`inventory_from_nodes`. Which device of *this* machine backs a GPU for the local
backends is `airflow_fate.launch.devices`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from airflow_fate.domain.cluster import Cluster, GpuType, Interconnect, NodeSpec
from airflow_fate.domain.loaders import (
    format_loc,
    load_cluster,
    parse_text,
    read_text,
    validate_document,
)
from airflow_fate.errors import InputError
from airflow_fate.launch.types import GpuPlacement

GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY_MIB = "nvidia.com/gpu.memory"
GFD_COUNT = "nvidia.com/gpu.count"
DEVICES_FORMAT_VERSION = 1

_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeviceEntry(_Strict):
    """One GPU in ``devices.yaml``."""

    index: int = Field(ge=0)
    uuid: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    pci_bus_id: str = Field(pattern=r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")


class DevicesDoc(_Strict):
    """The ``devices.yaml`` document: node name -> its GPUs."""

    version: int = DEVICES_FORMAT_VERSION
    nodes: dict[str, list[DeviceEntry]]


class NodeFacts(_Strict):
    """Per-node facts no label carries."""

    host_cache_gib: float = Field(default=0.0, ge=0)
    network_gbps: float = Field(default=12.5, gt=0)
    nvlink: bool = False


class GpuTypeFacts(_Strict):
    """Per-product facts GFD does not label."""

    relative_speed: float | None = Field(default=None, gt=0)
    usable_fraction: float = Field(default=0.9, gt=0, le=1)
    prefix_kv_fraction: float = Field(default=0.05, ge=0, lt=1)


class DiscoveryDefaults(_Strict):
    """The ``cluster.yaml`` key of the inventory ConfigMap (for discovery)."""

    interconnect: Interconnect
    node_defaults: NodeFacts = Field(default_factory=NodeFacts)
    nodes: dict[str, NodeFacts] = Field(default_factory=dict)
    gpu_types: dict[str, GpuTypeFacts] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """A physical GPU: its node, node-local index, NVIDIA UUID and PCI bus id."""

    node: str
    index: int
    uuid: str
    pci_bus_id: str


class GpuDirectory:
    """Lookup of GPUs by ``(node, index)`` and by UUID."""

    def __init__(self, devices: Iterable[GpuDevice]) -> None:
        self._by_slot: dict[tuple[str, int], GpuDevice] = {}
        self._by_uuid: dict[str, GpuDevice] = {}
        for dev in devices:
            if (dev.node, dev.index) in self._by_slot:
                raise ValueError(f"GPU {dev.node}[{dev.index}] listed twice")
            if dev.uuid in self._by_uuid:
                other = self._by_uuid[dev.uuid]
                raise ValueError(
                    f"UUID {dev.uuid} given to {other.node}[{other.index}] and "
                    f"{dev.node}[{dev.index}]"
                )
            self._by_slot[(dev.node, dev.index)] = dev
            self._by_uuid[dev.uuid] = dev

    def __len__(self) -> int:
        return len(self._by_slot)

    def device(self, node: str, index: int) -> GpuDevice:
        """The GPU at ``node``'s local ``index``; `KeyError` if unknown."""
        return self._by_slot[(node, index)]

    def by_uuid(self, uuid: str) -> GpuDevice | None:
        return self._by_uuid.get(uuid)

    def node_devices(self, node: str) -> tuple[GpuDevice, ...]:
        return tuple(
            sorted((d for d in self._by_slot.values() if d.node == node), key=lambda d: d.index)
        )


@dataclass(frozen=True)
class Inventory:
    """A `Cluster` for the planner and the `GpuDirectory` that names its GPUs."""

    cluster: Cluster
    devices: GpuDirectory

    def placement(self, global_gpus: Sequence[int]) -> GpuPlacement:
        """The `GpuPlacement` of an `Assignment`'s global GPU indices (all on one node)."""
        if not global_gpus:
            raise ValueError("an assignment needs at least one GPU")
        refs = [self.cluster.gpus[g] for g in global_gpus]
        nodes = {r.node for r in refs}
        if len(nodes) != 1:
            names = sorted(self.cluster.nodes[n].name for n in nodes)
            raise ValueError(f"GPUs {list(global_gpus)} span nodes {names}; a pod needs one")
        node = self.cluster.nodes[refs[0].node].name
        locals_ = tuple(r.local for r in refs)
        uuids = tuple(self.devices.device(node, i).uuid for i in locals_)
        return GpuPlacement(node=node, gpu_indices=locals_, gpu_uuids=uuids)

    def global_indices(self, node: str, uuids: Sequence[str]) -> tuple[int, ...]:
        """Global GPU indices of UUIDs reported by a stage on ``node`` (device-plugin)."""
        node_index = next((i for i, n in enumerate(self.cluster.nodes) if n.name == node), None)
        if node_index is None:
            raise KeyError(f"unknown node {node!r}")
        out: list[int] = []
        for uuid in uuids:
            dev = self.devices.by_uuid(uuid)
            if dev is None or dev.node != node:
                raise KeyError(f"GPU {uuid} is not in the inventory of node {node!r}")
            out.append(self.cluster.node_gpus[node_index][dev.index])
        return tuple(out)


def _validate(model: type[_M], data: Any, source: str) -> _M:
    if data is None:
        raise InputError(source, "", "document is empty")
    return validate_document(model, data, source)


def parse_devices(text: str, source: str) -> DevicesDoc:
    """Parse and check a ``devices.yaml`` document."""
    doc = _validate(DevicesDoc, parse_text(text, source), source)
    if doc.version != DEVICES_FORMAT_VERSION:
        raise InputError(source, "version", f"unsupported version {doc.version}; expected 1")
    return doc


def _directory(doc: DevicesDoc, counts: Mapping[str, int], source: str) -> GpuDirectory:
    devices: list[GpuDevice] = []
    for node, count in counts.items():
        entries = doc.nodes.get(node)
        if entries is None:
            raise InputError(source, format_loc(["nodes", node]), f"missing: node has {count} GPUs")
        indices = sorted(e.index for e in entries)
        if indices != list(range(count)):
            raise InputError(
                source,
                format_loc(["nodes", node]),
                f"GPU indices {indices} do not match the node's {count} GPUs (0..{count - 1})",
            )
        devices.extend(GpuDevice(node, e.index, e.uuid, e.pci_bus_id) for e in entries)
    try:
        return GpuDirectory(devices)
    except ValueError as exc:
        raise InputError(source, "nodes", str(exc)) from None


def load_inventory(cluster_path: str | Path, devices_path: str | Path) -> Inventory:
    """An `Inventory` from a ``cluster.yaml`` and a ``devices.yaml`` beside it."""
    cluster = load_cluster(cluster_path)
    dpath = Path(devices_path)
    doc = parse_devices(read_text(dpath), str(dpath))
    counts = {n.name: n.gpu_count for n in cluster.nodes}
    return Inventory(cluster=cluster, devices=_directory(doc, counts, str(dpath)))


def _gfd_labels(node: Mapping[str, Any], source: str) -> tuple[str, str, float, int] | None:
    meta = node.get("metadata") or {}
    name = str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    if GFD_COUNT not in labels:
        return None
    where = f"node {name}"
    try:
        count = int(str(labels[GFD_COUNT]))  # label values are text; a count says so
    except ValueError:
        raise InputError(
            source, where, f"label {GFD_COUNT}={labels[GFD_COUNT]!r} is not a number"
        ) from None
    if count <= 0:
        return None
    product = labels.get(GFD_PRODUCT)
    if not product:
        raise InputError(source, where, f"label {GFD_PRODUCT} is missing")
    try:
        memory_mib = int(str(labels[GFD_MEMORY_MIB]))
    except KeyError:
        raise InputError(source, where, f"label {GFD_MEMORY_MIB} is missing") from None
    except ValueError:
        memory_mib = 0
    if memory_mib <= 0:
        raise InputError(
            source, where, f"label {GFD_MEMORY_MIB}={labels[GFD_MEMORY_MIB]!r} is not MiB"
        )
    memory_gib = memory_mib / 1024
    return name, str(product), memory_gib, count


def inventory_from_nodes(
    nodes: Sequence[Mapping[str, Any]],
    devices_yaml: str,
    defaults_yaml: str,
    source: str,
) -> Inventory:
    """Build an `Inventory` from node objects (JSON) and the inventory ConfigMap's data.

    Nodes without a positive ``nvidia.com/gpu.count`` label are not GPU nodes; cordoned
    nodes (``spec.unschedulable``) are left out because nothing can be placed there.

    Args:
        nodes: node objects as the API serves them.
        devices_yaml: the ConfigMap's ``devices.yaml`` (per-GPU UUID, index, PCI id).
        defaults_yaml: the ConfigMap's ``cluster.yaml`` (`DiscoveryDefaults`).
        source: names the ConfigMap in errors, e.g. ``configmap airflow-fate/inventory``.
    """
    defaults = _validate(
        DiscoveryDefaults, parse_text(defaults_yaml, f"{source}: cluster.yaml"), source
    )
    doc = parse_devices(devices_yaml, f"{source}: devices.yaml")
    found: list[tuple[str, str, float, int]] = []
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        facts = _gfd_labels(node, source)
        if facts is not None:
            found.append(facts)
    if not found:
        raise InputError(source, "", f"no schedulable node carries a {GFD_COUNT} label")
    found.sort(key=lambda f: f[0])
    products = {p for _, p, _, _ in found}
    gpu_types: dict[str, GpuType] = {}
    for _, product, memory_gib, _ in found:
        if product in gpu_types:
            continue
        t = defaults.gpu_types.get(product, GpuTypeFacts())
        speed = t.relative_speed
        if speed is None:
            if len(products) > 1:
                raise InputError(
                    source,
                    f"cluster.yaml: gpu_types.{product}.relative_speed",
                    "required when the cluster has more than one GPU product",
                )
            speed = 1.0
        gpu_types[product] = GpuType(
            memory_gib=memory_gib,
            relative_speed=speed,
            usable_fraction=t.usable_fraction,
            prefix_kv_fraction=t.prefix_kv_fraction,
        )
    specs: list[NodeSpec] = []
    for name, product, _, count in found:
        node_facts = defaults.nodes.get(name, defaults.node_defaults)
        specs.append(
            NodeSpec(
                name=name,
                gpu_type=product,
                gpu_count=count,
                nvlink=node_facts.nvlink,
                host_cache_gib=node_facts.host_cache_gib,
                network_gbps=node_facts.network_gbps,
            )
        )
    cluster = Cluster(gpu_types=gpu_types, interconnect=defaults.interconnect, nodes=specs)
    counts = {name: count for name, _, _, count in found}
    directory = _directory(doc, counts, f"{source}: devices.yaml")
    return Inventory(cluster=cluster, devices=directory)
