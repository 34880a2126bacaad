"""Inventory from files and from node labels + ConfigMap data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_fate.errors import InputError
from airflow_fate.launch.inventory import (
    GpuDevice,
    GpuDirectory,
    inventory_from_nodes,
    load_inventory,
)

CLUSTER = {
    "version": 1,
    "gpu_types": {"H100": {"memory_gib": 80, "relative_speed": 1.0}},
    "interconnect": {
        "host_to_gpu_gbps": 25,
        "nvlink_gbps": 300,
        "local_disk_gbps": 3,
        "remote_store_gbps": 1.25,
    },
    "nodes": [
        {"name": "a", "gpu_type": "H100", "gpu_count": 2, "host_cache_gib": 64, "network_gbps": 25},
        {"name": "b", "gpu_type": "H100", "gpu_count": 1, "host_cache_gib": 64, "network_gbps": 25},
    ],
}


def _devices(nodes: dict[str, int]) -> dict[str, Any]:
    return {
        "version": 1,
        "nodes": {
            node: [
                {"index": i, "uuid": f"GPU-{node}-{i}", "pci_bus_id": f"00000000:{17 + i:02x}:00.0"}
                for i in range(count)
            ]
            for node, count in nodes.items()
        },
    }


def _write(tmp_path: Path, cluster: dict[str, Any], devices: dict[str, Any]) -> tuple[Path, Path]:
    c, d = tmp_path / "cluster.yaml", tmp_path / "devices.yaml"
    c.write_text(yaml.safe_dump(cluster))
    d.write_text(yaml.safe_dump(devices))
    return c, d


def test_file_inventory_maps_assignment_to_uuids_and_back(tmp_path: Path) -> None:
    inv = load_inventory(*_write(tmp_path, CLUSTER, _devices({"a": 2, "b": 1})))
    assert len(inv.devices) == 3
    placement = inv.placement([0, 1])
    assert placement.node == "a"
    assert placement.gpu_indices == (0, 1)
    assert placement.gpu_uuids == ("GPU-a-0", "GPU-a-1")
    assert inv.placement([2]).gpu_uuids == ("GPU-b-0",)
    assert inv.global_indices("a", ["GPU-a-1"]) == (1,)
    assert inv.global_indices("b", ["GPU-b-0"]) == (2,)
    assert inv.devices.device("a", 1).pci_bus_id == "00000000:12:00.0"


def test_assignment_across_nodes_is_refused(tmp_path: Path) -> None:
    inv = load_inventory(*_write(tmp_path, CLUSTER, _devices({"a": 2, "b": 1})))
    with pytest.raises(ValueError, match="span nodes"):
        inv.placement([1, 2])


def test_reported_uuid_from_another_node_is_refused(tmp_path: Path) -> None:
    inv = load_inventory(*_write(tmp_path, CLUSTER, _devices({"a": 2, "b": 1})))
    with pytest.raises(KeyError, match="not in the inventory of node 'a'"):
        inv.global_indices("a", ["GPU-b-0"])


@pytest.mark.parametrize(
    ("devices", "path", "reason"),
    [
        pytest.param(_devices({"a": 2}), "nodes.b", "missing", id="node-missing"),
        pytest.param(_devices({"a": 1, "b": 1}), "nodes.a", "do not match", id="too-few"),
        pytest.param(
            {**_devices({"a": 2, "b": 1}), "version": 9}, "version", "unsupported", id="version"
        ),
        pytest.param(
            {"nodes": {"a": [{"index": 0, "uuid": "GPU-x", "pci_bus_id": "nope"}]}},
            "nodes.a[0].pci_bus_id",
            "pattern",
            id="bad-pci",
        ),
    ],
)
def test_bad_devices_file_names_the_spot(
    tmp_path: Path, devices: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(InputError, match=reason) as err:
        load_inventory(*_write(tmp_path, CLUSTER, devices))
    assert err.value.path == path
    assert err.value.source.endswith("devices.yaml")


def test_duplicate_uuid_is_refused(tmp_path: Path) -> None:
    devices = _devices({"a": 2, "b": 1})
    devices["nodes"]["b"][0]["uuid"] = "GPU-a-0"
    with pytest.raises(InputError, match="UUID GPU-a-0 given to a\\[0\\] and b\\[0\\]"):
        load_inventory(*_write(tmp_path, CLUSTER, devices))


def test_directory_refuses_the_same_slot_twice() -> None:
    dev = GpuDevice("a", 0, "GPU-1", "0000:01:00.0")
    with pytest.raises(ValueError, match="listed twice"):
        GpuDirectory([dev, GpuDevice("a", 0, "GPU-2", "0000:02:00.0")])


def _node(name: str, labels: dict[str, str], unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"unschedulable": unschedulable}}


def _gfd(product: str, memory_mib: int, count: int) -> dict[str, str]:
    return {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.count": str(count),
    }


DEFAULTS = yaml.safe_dump(
    {
        "interconnect": CLUSTER["interconnect"],
        "node_defaults": {"host_cache_gib": 128, "network_gbps": 12.5},
        "nodes": {"h100-a": {"host_cache_gib": 1024, "network_gbps": 25, "nvlink": True}},
        "gpu_types": {
            "NVIDIA-H100-80GB-HBM3": {"relative_speed": 1.0},
            "NVIDIA-L4": {"relative_speed": 0.18},
        },
    }
)


def test_discovery_builds_cluster_from_gfd_labels_and_configmap() -> None:
    nodes = [
        _node("l4-a", _gfd("NVIDIA-L4", 23034, 1)),
        _node("h100-a", _gfd("NVIDIA-H100-80GB-HBM3", 81559, 2)),
        _node("cpu-only", {"kubernetes.io/os": "linux"}),
        _node("cordoned", _gfd("NVIDIA-L4", 23034, 1), unschedulable=True),
    ]
    devices = yaml.safe_dump(_devices({"h100-a": 2, "l4-a": 1}))
    inv = inventory_from_nodes(nodes, devices, DEFAULTS, "configmap ns/inv")
    cluster = inv.cluster
    assert [n.name for n in cluster.nodes] == ["h100-a", "l4-a"]
    h100 = cluster.nodes[0]
    assert (h100.gpu_count, h100.nvlink, h100.host_cache_gib) == (2, True, 1024)
    assert cluster.nodes[1].host_cache_gib == 128
    assert cluster.gpu_types["NVIDIA-H100-80GB-HBM3"].memory_gib == pytest.approx(81559 / 1024)
    assert cluster.gpu_types["NVIDIA-L4"].relative_speed == 0.18
    assert inv.placement([2]).gpu_uuids == ("GPU-l4-a-0",)
    assert cluster.reference_errors() == []


def test_single_product_defaults_relative_speed() -> None:
    defaults = yaml.safe_dump({"interconnect": CLUSTER["interconnect"]})
    inv = inventory_from_nodes(
        [_node("n", _gfd("NVIDIA-A10", 24000, 1))],
        yaml.safe_dump(_devices({"n": 1})),
        defaults,
        "cm",
    )
    assert inv.cluster.gpu_types["NVIDIA-A10"].relative_speed == 1.0


@pytest.mark.parametrize(
    ("nodes", "defaults", "reason"),
    [
        pytest.param(
            [_node("n", {"nvidia.com/gpu.count": "x"})], DEFAULTS, "not a number", id="bad-count"
        ),
        pytest.param(
            [_node("n", {"nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "1"})],
            DEFAULTS,
            "gpu.product is missing",
            id="no-product",
        ),
        pytest.param(
            [_node("n", {"nvidia.com/gpu.count": "1", "nvidia.com/gpu.product": "P"})],
            DEFAULTS,
            "gpu.memory is missing",
            id="no-memory",
        ),
        pytest.param([_node("n", {})], DEFAULTS, "no schedulable node", id="no-gpu-nodes"),
        pytest.param(
            [_node("a", _gfd("P1", 1024, 1)), _node("b", _gfd("P2", 1024, 1))],
            yaml.safe_dump({"interconnect": CLUSTER["interconnect"]}),
            "required when the cluster has more than one GPU product",
            id="speed-needed",
        ),
        pytest.param(
            [_node("n", _gfd("P", 1024, 1))], "node_defaults: {}\n", "interconnect", id="no-ic"
        ),
    ],
)
def test_discovery_errors(nodes: list[dict[str, Any]], defaults: str, reason: str) -> None:
    devices = yaml.safe_dump(_devices({"n": 1, "a": 1, "b": 1}))
    with pytest.raises(InputError, match=reason):
        inventory_from_nodes(nodes, devices, defaults, "configmap ns/inv")


def test_discovery_requires_devices_for_every_gpu_node() -> None:
    with pytest.raises(InputError, match="missing: node has 2 GPUs"):
        inventory_from_nodes(
            [_node("h100-a", _gfd("NVIDIA-H100-80GB-HBM3", 81559, 2))],
            yaml.safe_dump(_devices({"other": 1})),
            DEFAULTS,
            "cm",
        )
