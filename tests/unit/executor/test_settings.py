"""``[fate]`` settings: defaults, types and errors that name the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.errors import InputError
from airflow_fate.executor.runtime import configured_policy
from airflow_fate.executor.settings import load_settings

CLUSTER = """
version: 1
gpu_types: {H100: {memory_gib: 80, relative_speed: 1.0}}
interconnect: {host_to_gpu_gbps: 25, nvlink_gbps: 300, local_disk_gbps: 3, remote_store_gbps: 1.25}
nodes: [{name: gpu-a, gpu_type: H100, gpu_count: 2, host_cache_gib: 64, network_gbps: 25}]
"""
DEVICES = """
version: 1
nodes:
  gpu-a:
    - {index: 0, uuid: GPU-a-0, pci_bus_id: "00000000:11:00.0"}
    - {index: 1, uuid: GPU-a-1, pci_bus_id: "00000000:12:00.0"}
"""


def _getter(values: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda section, k: values.get(k) if section == "fate" else None


def test_defaults_and_overrides() -> None:
    s = load_settings(_getter({"cluster": "c.yaml", "models": "m.yaml", "horizon": "3"}))
    assert s.cluster == Path("c.yaml") and s.launcher == "local" and s.policy == "fate"
    assert s.horizon == 3 and s.detach_on_end is True and s.cpu_slots == 4


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"models": "m"}, "[fate]: cluster: required", id="missing-cluster"),
        pytest.param(
            {"models": "m", "launcher": "kubernetes", "kubernetes_devices": "d.yaml"},
            "[fate]: cluster: required",
            id="devices-without-cluster",
        ),
        pytest.param(
            {"cluster": "c", "models": "m", "launcher": "kubernetes"},
            "[fate]: cluster: with launcher = kubernetes, set kubernetes_devices too",
            id="cluster-and-discovery",
        ),
        pytest.param(
            {"cluster": "c", "models": "m", "launcher": "slurm"}, "[fate]: launcher", id="launcher"
        ),
        pytest.param({"cluster": "c", "models": "m", "cpu_slots": "0"}, "cpu_slots", id="slots"),
    ],
)
def test_bad_settings_name_the_option(values: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as err:
        load_settings(_getter(values))
    assert message in str(err.value)


def test_fate_policy_gets_horizon_and_time_limit() -> None:
    s = load_settings(
        _getter({"cluster": "c", "models": "m", "horizon": "1", "planner_time_limit_s": "0.2"})
    )
    policy = configured_policy(s)
    assert policy.config.horizon == 1  # type: ignore[attr-defined]
    assert policy.config.time_limit_s == 0.2  # type: ignore[attr-defined]
    baseline = configured_policy(s.model_copy(update={"policy": "round-robin"}))
    assert baseline.name == "round-robin"


def test_kubernetes_backend_plugs_in_with_uuid_placements(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    from airflow_fate.domain.loaders import load_cluster
    from airflow_fate.launch.backends import build_backend
    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher

    config = Path(__file__).resolve().parents[3] / "k8s" / "base" / "config"
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(CLUSTER, encoding="utf-8")
    devices = tmp_path / "devices.yaml"
    devices.write_text(DEVICES, encoding="utf-8")
    s = load_settings(
        _getter(
            {
                "cluster": str(cluster_file),
                "models": "m.yaml",
                "launcher": "kubernetes",
                "kubernetes_mode": "pod-per-stage",
                "kubernetes_settings": str(config / "launcher.yaml"),
                "kubernetes_devices": str(devices),
            }
        )
    )
    setup = build_backend(s, tmp_path)
    assert isinstance(setup.launcher, KubernetesLauncher)
    assert setup.hosting.mode == "pod-per-stage", "a pod per stage keeps nothing on the GPU"
    assert setup.hosting.pod_start_s == setup.cluster.pod_start_s
    assert setup.cluster == load_cluster(cluster_file)
    where = setup.placement([1])
    assert (where.node, where.gpu_indices, where.gpu_uuids) == ("gpu-a", (1,), ("GPU-a-1",))


def _kubernetes_settings(tmp_path: Path, launcher_yaml: Path, **more: str):  # type: ignore[no-untyped-def]
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(CLUSTER, encoding="utf-8")
    devices = tmp_path / "devices.yaml"
    devices.write_text(DEVICES, encoding="utf-8")
    values = {
        "cluster": str(cluster_file),
        "models": "m.yaml",
        "launcher": "kubernetes",
        "kubernetes_settings": str(launcher_yaml),
        "kubernetes_devices": str(devices),
        "worker_idle_s": "120",
        **more,
    }
    return load_settings(_getter(values))


def test_worker_pods_are_the_default_kubernetes_mode(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    from airflow_fate.launch.backends import build_backend
    from airflow_fate.launch.kubernetes.worker_pods import WorkerPodLauncher

    overlay = Path(__file__).resolve().parents[3] / "k8s" / "overlays" / "single-node"
    s = _kubernetes_settings(tmp_path, overlay / "launcher.yaml")
    assert s.kubernetes_mode == "worker-pods"
    setup = build_backend(s, tmp_path)
    assert isinstance(setup.launcher, WorkerPodLauncher)
    assert setup.hosting.mode == "worker-pods" and setup.hosting.keeps_state
    assert setup.hosting.worker_idle_s == 120.0
    assert setup.hosting.prestart, "a pod per GPU starts with the scheduler, as simulated"
    assert setup.launcher.settings.worker.prestart
    assert setup.hosting.pod_start_s == setup.cluster.pod_start_s

    lazy = tmp_path / "lazy" / "launcher.yaml"
    lazy.parent.mkdir()
    text = (overlay / "launcher.yaml").read_text(encoding="utf-8")
    lazy.write_text(text.replace("worker:", "worker:\n  prestart: false", 1), encoding="utf-8")
    setup = build_backend(_kubernetes_settings(tmp_path, lazy), tmp_path)
    assert not setup.hosting.prestart, "then the first stage on each GPU pays a pod start"


def test_worker_pods_refuse_device_plugin_pinning(tmp_path: Path) -> None:
    from airflow_fate.launch.backends import build_backend

    launcher_yaml = tmp_path / "launcher.yaml"
    launcher_yaml.write_text("pod: {gpu_mode: device-plugin}\n", encoding="utf-8")
    s = _kubernetes_settings(tmp_path, launcher_yaml)
    with pytest.raises(InputError, match=r"launcher\.yaml: pod\.gpu_mode: worker pods hold"):
        build_backend(s, tmp_path)


def test_unknown_kubernetes_mode_names_the_option() -> None:
    with pytest.raises(InputError, match=r"\[fate\]: kubernetes_mode"):
        load_settings(_getter({"cluster": "c", "models": "m", "kubernetes_mode": "daemonset"}))


def test_kubernetes_backend_needs_its_files() -> None:
    from airflow_fate.launch.backends import build_backend

    s = load_settings(_getter({"models": "m", "launcher": "kubernetes"}))
    with pytest.raises(InputError, match="kubernetes_settings"):
        build_backend(s, Path("."))
