"""This machine's devices: file format, discovery, and binding to the cluster's GPUs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from airflow_fate.domain.loaders import load_cluster
from airflow_fate.errors import InputError
from airflow_fate.launch.devices import (
    DeviceList,
    DeviceSpec,
    bind,
    discover_devices,
    load_devices,
    merge,
    parse_nvidia_smi,
    unshared_cores_warning,
)

LOCAL = Path(__file__).resolve().parents[3] / "examples" / "local"
GIB = 1024**3
SMI = (
    "0, GPU-aaaa-1111, NVIDIA H100 80GB HBM3, 81559\n"
    "1, GPU-bbbb-2222, NVIDIA H100 80GB HBM3, 81559\n"
)


def test_example_inventory_binds_the_example_cluster() -> None:
    cluster = load_cluster(LOCAL / "cluster.yaml")
    bindings = bind(cluster, load_devices(LOCAL / "inventory.yaml"))
    assert [b.ids for b in bindings] == [["cpu0"], ["cpu1"], ["cpu2"]]
    assert all(b.platform == "cpu" and b.threads == 1 for b in bindings)
    assert bindings[0].memory_bytes == int(0.75 * 0.75 * GIB)  # usable_fraction of memory
    assert bindings[0].prefix_bytes == int(0.75 * 0.05 * GIB)  # prefix_kv_fraction


def test_parse_nvidia_smi_csv() -> None:
    devices = parse_nvidia_smi(SMI + "garbage line\n")
    assert [(d.cuda_index, d.uuid) for d in devices] == [(0, "GPU-aaaa-1111"), (1, "GPU-bbbb-2222")]
    assert devices[0].memory_gib == pytest.approx(79.65, abs=0.01)


def test_discover_prefers_gpus_and_falls_back_to_cpu_slices() -> None:
    def smi(cmd: Sequence[str]) -> str | None:
        assert cmd[0] == "nvidia-smi"
        return SMI

    assert [d.platform for d in discover_devices(3, run=smi).devices] == ["cuda", "cuda"]
    cpu = discover_devices(3, run=lambda cmd: None, cpu_count=8)
    assert [(d.id, d.threads) for d in cpu.devices] == [("cpu0", 2), ("cpu1", 2), ("cpu2", 2)]
    assert discover_devices(4, run=lambda cmd: "", cpu_count=2).devices[0].threads == 1


def test_gpu_binding_pins_cuda_indices_and_uses_uuids() -> None:
    cluster = load_cluster(LOCAL / "cluster.yaml")
    inventory = DeviceList(
        devices=[*parse_nvidia_smi(SMI), DeviceSpec(platform="cuda", cuda_index=7)]
    )
    bindings = bind(cluster, inventory)
    assert [b.ids for b in bindings] == [["GPU-aaaa-1111"], ["GPU-bbbb-2222"], ["cuda7"]]
    assert [b.cuda_indices for b in bindings] == [[0], [1], [7]]
    group = merge(bindings[:2])
    assert group.ids == ["GPU-aaaa-1111", "GPU-bbbb-2222"] and group.cuda_indices == [0, 1]
    assert group.memory_bytes == 2 * bindings[0].memory_bytes


def test_too_few_devices_or_too_little_memory_is_an_input_error() -> None:
    cluster = load_cluster(LOCAL / "cluster.yaml")
    with pytest.raises(InputError, match="3 GPUs but the inventory has 1"):
        bind(cluster, DeviceList(devices=[DeviceSpec(platform="cpu")]))
    small = [DeviceSpec(platform="cuda", cuda_index=i, memory_gib=0.5) for i in range(3)]
    with pytest.raises(InputError, match=r"claims 0\.75 GiB but the device has 0\.5"):
        bind(cluster, DeviceList(devices=small))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("version: 1\ndevices: []\n", "devices", id="empty"),
        pytest.param(
            "version: 1\ndevices:\n  - {platform: tpu}\n", "devices[0].platform", id="tpu"
        ),
        pytest.param(
            "version: 1\ndevices:\n  - {platform: cuda}\n", "devices[0].cuda_index", id="idx"
        ),
        pytest.param("version: 2\ndevices:\n  - {platform: cpu}\n", "version", id="version"),
    ],
)
def test_bad_inventory_files_name_the_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_devices(path)
    assert err.value.source == str(path)
    assert err.value.path == where


def test_cpu_devices_on_too_few_cores_are_named_unless_the_cluster_says_so() -> None:
    shared = load_cluster(LOCAL / "cluster.yaml")  # cpu_cores: 2
    bindings = bind(shared, load_devices(LOCAL / "inventory.yaml"))
    doc = shared.model_dump()
    doc["nodes"][0]["cpu_cores"] = None
    unshared = type(shared).model_validate(doc)
    assert unshared_cores_warning(shared, bindings, cores=2) is None
    assert unshared_cores_warning(unshared, bindings, cores=4) is None, "a core each"
    warning = unshared_cores_warning(unshared, bindings, cores=2)
    assert warning is not None
    assert "3 CPU device threads share 2 cores" in warning
    assert "node local" in warning and "cpu_cores: 2" in warning
