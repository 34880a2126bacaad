"""This machine's devices: from a file, or discovered, and bound to the cluster's GPUs.

The local backends' counterpart of `airflow_fate.launch.inventory` (which names the GPUs
of a whole cluster for pods): the cluster file (``cluster.yaml``) is the planner's view
(GPU types, memory, nodes); ``[fate] inventory`` says which physical device of this
machine each of its GPUs is: a CUDA device (index, UUID) or a virtual CPU device.
``inventory.yaml``::

    version: 1
    devices:
      - {platform: cuda, cuda_index: 0, uuid: GPU-5d1c..., memory_gib: 80}
      - {platform: cpu, id: cpu1, threads: 1}

Without a file, `discover_devices` asks ``nvidia-smi`` and falls back to virtual CPU devices.
`bind` pairs the cluster's GPUs (global index order) with the inventory's devices and
takes each worker's memory budgets from the cluster's GPU type, the same figures the
planner's state uses.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import read_document, validate_document
from airflow_fate.domain.models import GIB
from airflow_fate.errors import InputError
from airflow_fate.runtime.binding import DeviceBinding

FORMAT_VERSION = 1
NVIDIA_SMI = (
    "nvidia-smi",
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader,nounits",
)
_SMI_TIMEOUT_S = 15.0


class DeviceSpec(BaseModel):
    """One physical (or virtual) device of this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    platform: Literal["cpu", "cuda"]
    id: str | None = Field(default=None, min_length=1, description="defaults: UUID, cpuN")
    cuda_index: int | None = Field(default=None, ge=0)
    uuid: str | None = None
    name: str | None = None
    memory_gib: float | None = Field(default=None, gt=0)
    threads: int | None = Field(default=None, ge=1)


class DeviceList(BaseModel):
    """The ``inventory.yaml`` document: this machine's devices, in cluster GPU order."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: int = FORMAT_VERSION
    devices: list[DeviceSpec] = Field(min_length=1)


def load_devices(path: str | Path) -> DeviceList:
    """Load and check an ``inventory.yaml`` (errors name the file and field)."""
    p = Path(path)
    inventory = validate_document(DeviceList, read_document(p), str(p))
    if inventory.version != FORMAT_VERSION:
        raise InputError(str(p), "version", f"unsupported version {inventory.version}; expected 1")
    for i, dev in enumerate(inventory.devices):
        if dev.platform == "cuda" and dev.cuda_index is None:
            raise InputError(str(p), f"devices[{i}].cuda_index", "required for cuda devices")
    return inventory


def discover_devices(
    count: int,
    *,
    run: Callable[[Sequence[str]], str | None] | None = None,
    cpu_count: int | None = None,
) -> DeviceList:
    """The GPUs ``nvidia-smi`` lists, else ``count`` virtual CPU devices sharing the cores.

    Args:
        count: how many virtual CPU devices to make when there is no GPU.
        run: runs a command and returns its stdout or None (injectable for tests).
        cpu_count: cores to share among virtual devices (default: this machine's).
    """
    out = (run or _run)(NVIDIA_SMI)
    gpus = parse_nvidia_smi(out) if out else []
    if gpus:
        return DeviceList(devices=gpus)
    cores = cpu_count or os.cpu_count() or 1
    threads = max(1, cores // max(count, 1))
    return DeviceList(
        devices=[DeviceSpec(platform="cpu", id=f"cpu{i}", threads=threads) for i in range(count)]
    )


def parse_nvidia_smi(text: str) -> list[DeviceSpec]:
    """Devices from ``nvidia-smi --query-gpu=index,uuid,name,memory.total`` CSV (MiB)."""
    devices: list[DeviceSpec] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        index, uuid, name, mib = parts
        try:
            memory = float(mib) / 1024
        except ValueError:
            memory = None
        devices.append(
            DeviceSpec(
                platform="cuda", cuda_index=int(index), uuid=uuid, name=name, memory_gib=memory
            )
        )
    return devices


def bind(cluster: Cluster, inventory: DeviceList, source: str = "inventory") -> list[DeviceBinding]:
    """One single-device binding per cluster GPU, in global GPU index order.

    Raises:
        InputError: when the inventory has too few devices, or a device has less memory
            than the cluster's GPU type claims.
    """
    gpus = cluster.gpus
    devices = inventory.devices
    if len(devices) < len(gpus):
        raise InputError(
            source,
            "devices",
            f"the cluster has {len(gpus)} GPUs but the inventory has {len(devices)} devices",
        )
    out: list[DeviceBinding] = []
    for ref, dev in zip(gpus, devices, strict=False):
        node = cluster.nodes[ref.node]
        gpu_type = cluster.gpu_types[node.gpu_type]
        if dev.memory_gib is not None and gpu_type.memory_gib > dev.memory_gib + 1e-6:
            raise InputError(
                source,
                f"devices[{ref.index}]",
                f"GPU type {node.gpu_type!r} claims {gpu_type.memory_gib} GiB but the device "
                f"has {dev.memory_gib:.1f} GiB",
            )
        out.append(
            DeviceBinding(
                ids=[_device_id(dev, ref.index)],
                platform=dev.platform,
                cuda_indices=[dev.cuda_index] if dev.cuda_index is not None else [],
                memory_bytes=int(gpu_type.usable_gib * GIB),
                prefix_bytes=int(gpu_type.memory_gib * gpu_type.prefix_kv_fraction * GIB),
                threads=dev.threads,
            )
        )
    return out


def bind_devices(cluster: Cluster, devices_file: Path | None) -> list[DeviceBinding]:
    """Bind each cluster GPU to a device of this machine: from ``devices_file`` when
    given, else discovered (nvidia-smi, else CPU devices). What ``run`` and
    ``calibrate`` both do with their ``--inventory`` option."""
    if devices_file is not None:
        return bind(cluster, load_devices(devices_file), str(devices_file))
    return bind(cluster, discover_devices(len(cluster.gpus)), "discovered devices")


def unshared_cores_warning(
    cluster: Cluster, bindings: Sequence[DeviceBinding], cores: int | None = None
) -> str | None:
    """Why predictions will run fast, if CPU devices need more threads than this machine
    has ``cores`` (default: its count) and their nodes give no ``cpu_cores``: the cost
    model then assumes each device has its cores to itself. None when all is well."""
    cores = cores or os.cpu_count() or 1
    threads = 0
    unshared: set[str] = set()
    for binding, ref in zip(bindings, cluster.gpus, strict=True):
        if binding.platform == "cpu":
            threads += binding.threads or 1
            node = cluster.nodes[ref.node]
            if node.cpu_cores is None:
                unshared.add(node.name)
    if threads <= cores or not unshared:
        return None
    return (
        f"{threads} CPU device threads share {cores} cores here, but cluster.yaml gives no "
        f"cpu_cores for node {', '.join(sorted(unshared))}: predictions assume a core "
        f"per thread (set cpu_cores: {cores})"
    )


def merge(bindings: Sequence[DeviceBinding]) -> DeviceBinding:
    """One binding for a shard group: the devices together, their budgets summed."""
    if len(bindings) == 1:
        return bindings[0]
    platforms = {b.platform for b in bindings}
    if len(platforms) != 1:
        raise ValueError(f"cannot group devices of platforms {sorted(platforms)}")
    threads = [b.threads for b in bindings if b.threads is not None]
    return DeviceBinding(
        ids=[i for b in bindings for i in b.ids],
        platform=bindings[0].platform,
        cuda_indices=[i for b in bindings for i in b.cuda_indices],
        memory_bytes=sum(b.memory_bytes for b in bindings),
        prefix_bytes=sum(b.prefix_bytes for b in bindings),
        threads=sum(threads) if threads else None,
    )


def _device_id(dev: DeviceSpec, index: int) -> str:
    if dev.id is not None:
        return dev.id
    if dev.uuid is not None:
        return dev.uuid
    return f"cuda{dev.cuda_index}" if dev.platform == "cuda" else f"cpu{index}"


def _run(cmd: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
