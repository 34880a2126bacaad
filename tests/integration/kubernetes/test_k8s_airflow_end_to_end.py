"""End to end: real Airflow with ``[fate] launcher = kubernetes`` against the fake API server,
in ``kubernetes_mode = pod-per-stage`` (worker pods: ``test_k8s_worker_pods_end_to_end``).

The scheduler (a subprocess, with FateExecutor) finds the fake API server the way it
finds a real cluster, through ``KUBECONFIG``; the launcher's settings, pod template and
``devices.yaml`` are files named in ``[fate]``. `ProcessKubelet` plays the nodes: each
stage pod's container command runs as a local process with the pod's environment, so
the real Airflow tasks of an example DAG run (the LLM stages load SmolLM2 on the CPU),
report to the API server through the execution API URL the pod template gives them, and
succeed. Nothing inside the executor or launcher knows it is a test.

The checks: the run and every task succeed (database); every task has a
``fate_placement`` row from the kubernetes launcher; exactly one pod was created per
task try, pinned to the placement's node and GPU UUIDs (env-pin: the container's
environment; dra: the ResourceClaim's selector and the devices allocated from it), with
the try's identity in its labels and annotations; every pod is gone at the end; and the
stage itself reports (its ``fate_measured`` XCom) the node and devices it ran on.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
import yaml
from fake_apiserver import FakeApiServer, Json
from k8s_testkit import write_kubeconfig
from process_kubelet import PodRun, ProcessKubelet, image_environment

from airflow_fate.demo.environment import AirflowEnvironment
from airflow_fate.demo.inputs import CLUSTER
from airflow_fate.executor.store import PlacementRow
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.podspec import HOSTNAME_LABEL
from airflow_fate.launch.kubernetes.settings import GpuMode
from tests.integration.airflow.conftest import (
    RUN_TIMEOUT_S,
    airflow_environment,
    assert_every_task_placed,
    start,
)

pytestmark = [pytest.mark.slow, pytest.mark.campaign]
"""Pod-per-stage is the other Kubernetes mode; CI runs its launcher against the fake API
server (``test_k8s_launcher.py``) and the default mode end to end."""

DAG_ID = "fate_multi_agent_review"
TASKS = {"draft", "review_style", "review_facts", "revise"}
NAMESPACE = "fate-e2e"
EXECUTOR_ID = "fate-e2e-scheduler"
NODES = ("gpu-node-a", "gpu-node-b")


def uuid_of(node: str, index: int) -> str:
    """The made-up UUID ``devices.yaml`` gives GPU ``index`` of ``node``."""
    n = NODES.index(node)
    return f"GPU-{n:08x}-0000-4000-8000-{index:012x}"


@pytest.mark.parametrize("mode", [GpuMode.ENV_PIN, GpuMode.DRA], ids=lambda m: m.value)
def test_example_dag_runs_as_pods(mode: GpuMode, apiserver: FakeApiServer, tmp_path: Path) -> None:
    config = tmp_path / "k8s"
    config.mkdir()
    kubeconfig = write_kubeconfig(config / "kubeconfig", apiserver.url)
    cluster, devices = write_cluster(config)
    template = config / "pod-template.yaml"
    launcher_yaml = write_launcher_settings(config / "launcher.yaml", mode, template)
    fate = {
        "launcher": "kubernetes",
        "kubernetes_mode": "pod-per-stage",
        "cluster": str(cluster),
        "kubernetes_settings": str(launcher_yaml),
        "kubernetes_devices": str(devices),
    }
    kubelet = ProcessKubelet(
        apiserver,
        image_environment(tmp_path / "container"),
        tmp_path / "pod-logs",
        nodes=set(NODES),
    )
    t0 = time.monotonic()
    with (
        kubelet,
        airflow_environment(
            tmp_path / "home", fate=fate, extra_env={"KUBECONFIG": str(kubeconfig)}
        ) as env,
    ):
        write_pod_template(template, env)
        start(env)
        runs = env.trigger([DAG_ID])
        [final] = env.wait_runs(runs, RUN_TIMEOUT_S)
        assert final.state == "success", failure_report(env, kubelet)
        assert env.wait_placements_closed([DAG_ID], 60.0)
        wait_until(lambda: not apiserver.objects("pods", NAMESPACE), 60.0, "pods deleted")
        assert not kubelet.alive(), "every pod's process exited by itself"
        states = env.task_states(runs)
        assert {task for (_, _, task) in states} == TASKS
        assert set(states.values()) == {"success"}, states
        placements = env.placements([DAG_ID])
        assert_every_task_placed(env, runs, placements)
    print(f"end to end in {time.monotonic() - t0:.0f}s")

    assert sorted(p.key.task_id for p in placements) == sorted(TASKS), "one placement per task"
    assert {p.launcher for p in placements} == {"kubernetes"}
    assert {p.state for p in placements} == {"success"}
    # Each pod loads its model afresh: the planner must not predict a warm GPU.
    assert all(p.predicted["load"] > 0 for p in placements if p.gpus), [
        (p.key.task_id, p.predicted) for p in placements
    ]

    created = created_objects(apiserver, "pods")
    keys = [naming.key_from_annotations(p["metadata"].get("annotations")) for p in created]
    assert Counter(keys) == Counter(p.key for p in placements), "exactly one pod per task try"
    claims = {c["metadata"]["name"]: c for c in created_objects(apiserver, "resourceclaims")}
    deleted = {
        (e.resource, e.new["metadata"]["name"]) for e in history(apiserver) if e.type == "DELETED"
    }
    for placement in placements:
        pod = next(p for p, k in zip(created, keys, strict=True) if k == placement.key)
        run = kubelet.runs[(NAMESPACE, pod["metadata"]["name"])]
        check_pod(pod, run, placement, mode, claims)
        assert ("pods", pod["metadata"]["name"]) in deleted, "finished pods are deleted"
    if mode is GpuMode.DRA:
        assert len(claims) == len(placements)
        assert {("resourceclaims", name) for name in claims} <= deleted, "claims deleted"
    else:
        assert not claims
    assert not kubelet.errors, kubelet.errors


def check_pod(
    pod: Json, run: PodRun, placement: PlacementRow, mode: GpuMode, claims: dict[str, Json]
) -> None:
    """The pod of one try: identity, node and GPUs, and what actually ran in it."""
    meta, spec = pod["metadata"], pod["spec"]
    key = placement.key
    name = meta["name"]
    uuids = [uuid_of(placement.node, i) for i in placement.gpus]
    assert placement.gpus, f"{key.task_id} is a stage and got GPUs"
    assert placement.node == NODES[1], "the LLM fits only the second node's GPUs"

    assert name == naming.pod_name(key)
    assert naming.task_labels(key).items() <= meta["labels"].items()
    assert naming.task_annotations(key).items() <= meta["annotations"].items()
    assert meta["labels"][naming.EXECUTOR_LABEL] == EXECUTOR_ID
    assert meta["labels"][naming.TASK_ID] == key.task_id
    assert meta["annotations"][naming.RUN_ID] == key.run_id
    assert meta["annotations"][naming.TRY_NUMBER] == str(key.try_number)

    assert spec["nodeSelector"][HOSTNAME_LABEL] == placement.node
    assert "nodeName" not in spec, "pinned through the scheduler, never nodeName"
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["FATE_NODE"] == placement.node
    assert env["FATE_GPU_UUIDS"] == ",".join(uuids)
    assert env["FATE_GPU_INDICES"] == ",".join(map(str, placement.gpus))
    if mode is GpuMode.ENV_PIN:
        assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids)
        assert "resourceClaims" not in spec
    else:
        [ref] = spec["resourceClaims"]
        claim = claims[ref["resourceClaimName"]]
        expression = claim["spec"]["devices"]["requests"][0]["exactly"]["selectors"][0]["cel"]
        listed = expression["expression"].partition(" in ")[2]
        assert yaml.safe_load(listed) == uuids, "the claim selects exactly the planned GPUs"
        assert run.visible_devices == tuple(uuids)

    assert run.node == placement.node
    assert run.exit_code == 0 and not run.killed, run.log()[-3000:]
    assert run.env["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids)
    assert run.argv[:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    measured = placement.measured or {}
    assert measured.get("node") == placement.node, "the stage ran with the pod's placement"
    assert measured.get("devices") == uuids


# -- inputs --------------------------------------------------------------------------------


def write_cluster(directory: Path) -> tuple[Path, Path]:
    """The demo's virtual CPU "GPUs" on two nodes, and their ``devices.yaml``.

    The first node's only GPU is too small for the LLM, so the stages land on the second
    node, whose node-local GPU indices differ from the planner's global ones (a mix-up
    of the two would pin the wrong UUIDs); its devices are listed out of index order.
    """
    doc: dict[str, Any] = yaml.safe_load(CLUSTER)
    [slice_type] = doc["gpu_types"]
    doc["gpu_types"]["cpu-tiny"] = {**doc["gpu_types"][slice_type], "memory_gib": 0.25}
    [template] = doc["nodes"]
    doc["nodes"] = [
        {**template, "name": node, "gpu_type": gpu_type, "gpu_count": count}
        for node, (gpu_type, count) in zip(NODES, [("cpu-tiny", 1), (slice_type, 2)], strict=True)
    ]
    cluster = directory / "cluster.yaml"
    cluster.write_text(yaml.safe_dump(doc), encoding="utf-8")
    devices = {
        "version": 1,
        "nodes": {
            node["name"]: [
                {
                    "index": i,
                    "uuid": uuid_of(node["name"], i),
                    "pci_bus_id": f"0000:{0x18 + i:02x}:00.0",
                }
                for i in reversed(range(node["gpu_count"]))
            ]
            for node in doc["nodes"]
        },
    }
    path = directory / "devices.yaml"
    path.write_text(yaml.safe_dump(devices), encoding="utf-8")
    return cluster, path


def write_launcher_settings(path: Path, mode: GpuMode, template: Path) -> Path:
    doc = {
        "executor_id": EXECUTOR_ID,
        "on_finish": "delete",
        "watch_timeout_s": 5,
        "request_timeout_s": 10,
        "unschedulable_timeout_s": 60,
        "retry": {"base_delay_s": 0.2, "max_delay_s": 2},
        "pod": {
            "namespace": NAMESPACE,
            "gpu_mode": mode.value,
            "model_cache_host_path": None,
            "outputs_claim": None,
            "pod_template_file": str(template),
        },
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def write_pod_template(path: Path, env: AirflowEnvironment) -> None:
    """What a deployment's pod template carries: where the API server, DAGs and catalog are.

    In a cluster these point at the API server's Service and files baked into the image;
    here at the test's API server and this checkout. One CPU thread per stage, like the
    demo's virtual devices, and no hub access (the models come from installed packages).
    """
    variables = {
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{env.port}/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(env.dags_folder),
        "AIRFLOW__FATE__MODELS": str(env.inputs.models),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stage-template", "labels": {"team": "e2e"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {"name": "base", "env": [{"name": k, "value": v} for k, v in variables.items()]}
            ],
        },
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


# -- reading what happened -------------------------------------------------------------


def history(apiserver: FakeApiServer) -> list[Any]:
    with apiserver.store.cond:
        return list(apiserver.store.history)


def created_objects(apiserver: FakeApiServer, resource: str) -> list[Json]:
    """Every object of ``resource`` the server created in the namespace, as created."""
    return [
        e.new
        for e in history(apiserver)
        if e.type == "ADDED" and e.resource == resource and e.namespace == NAMESPACE
    ]


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g}s: {what}"
        time.sleep(0.2)


def failure_report(env: AirflowEnvironment, kubelet: ProcessKubelet) -> str:
    """Task states, kubelet errors and the tail of each pod's output, for a failed run."""
    lines = [f"kubelet errors: {kubelet.errors}"]
    for run in kubelet.runs.values():
        lines.append(f"--- pod {run.name} exit {run.popen.poll()}:\n{run.log()[-2000:]}")
    scheduler = env.logs / "scheduler.log"
    if scheduler.exists():
        lines.append(f"--- scheduler:\n{scheduler.read_text(errors='replace')[-3000:]}")
    for task_log in sorted((env.home / "logs").rglob("*.log"))[-4:]:
        lines.append(
            f"--- task log {task_log.name}:\n{task_log.read_text(errors='replace')[-2000:]}"
        )
    return "\n".join(lines)
