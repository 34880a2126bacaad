"""End to end: real Airflow on GPU worker pods (``kubernetes_mode = worker-pods``).

As the pod-per-stage test (`test_k8s_airflow_end_to_end`), the scheduler finds the fake
API server through ``KUBECONFIG`` and `ProcessKubelet` plays the nodes; here each pod it
runs is a worker pod: the task agent and the device worker as local processes, with the
pod's own IP, its environment and the agent key from the Secret the executor created.
The example DAG's real tasks (SmolLM2 on the CPU) run inside those pods.

The checks: every task placed once and successful; one pod per GPU set in use, never one
per task; the second stage of the model on a GPU set is measured warm (no load) and
predicted so; ``revise`` reuses ``draft``'s system-prompt KV on the same pod; an unsigned
or forged request to an agent is refused and runs nothing; the key never shows in a log.
Then a scheduler restart mid-run (pods adopted, every task exactly once, residency kept)
and a worker pod deleted mid-stage (that try fails naming the pod and node, the planner
drops the pod's state, the retry succeeds on a new pod).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
import yaml
from fake_apiserver import FakeApiServer
from k8s_testkit import write_kubeconfig
from process_kubelet import PodRun, ProcessKubelet, image_environment
from test_k8s_airflow_end_to_end import (
    DAG_ID,
    NAMESPACE,
    NODES,
    TASKS,
    created_objects,
    history,
    uuid_of,
    wait_until,
    write_cluster,
    write_launcher_settings,
    write_pod_template,
)
from test_k8s_airflow_end_to_end import failure_report as pod_failure_report

from airflow_fate.demo.environment import free_port
from airflow_fate.executor.store import PlacementRow
from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.agent.messages import TaskSubmission, WireKey
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.settings import GpuMode
from airflow_fate.launch.kubernetes.worker_podspec import SECRET_KEY
from airflow_fate.launch.types import TaskKey
from tests.integration.airflow.conftest import (
    RUN_TIMEOUT_S,
    airflow_environment,
    assert_every_task_placed,
    start,
)

pytestmark = pytest.mark.slow

SECRET_NAME = "airflow-fate-agent"


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """The pods' work directory: short, so the device workers' socket paths fit."""
    path = Path(tempfile.mkdtemp(prefix="fate-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Cluster:
    """The files ``[fate]`` names, a kubelet for the two nodes, and the agent port."""

    def __init__(
        self,
        apiserver: FakeApiServer,
        tmp_path: Path,
        work_dir: Path,
        mode: GpuMode,
        *,
        prestart: bool = True,
    ) -> None:
        config = tmp_path / "k8s"
        config.mkdir()
        self.port = free_port()
        self.kubeconfig = write_kubeconfig(config / "kubeconfig", apiserver.url)
        cluster, devices = write_cluster(config)
        listed = yaml.safe_load(devices.read_text(encoding="utf-8"))["nodes"]
        self.single_gpus = {(node, (d["index"],)) for node, ds in listed.items() for d in ds}
        self.template = config / "pod-template.yaml"
        launcher = write_launcher_settings(config / "launcher.yaml", mode, self.template)
        doc = yaml.safe_load(launcher.read_text(encoding="utf-8"))
        doc["worker"] = {
            "platform": "cpu",
            "cpu_threads": 1,
            "agent_port": self.port,
            "work_dir": str(work_dir),
            "poll_interval_s": 0.2,
            "start_timeout_s": 240,
            "agent_timeout_s": 5,
            "prestart": prestart,
        }
        launcher.write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.fate = {
            "launcher": "kubernetes",
            "kubernetes_mode": "worker-pods",
            "cluster": str(cluster),
            "kubernetes_settings": str(launcher),
            "kubernetes_devices": str(devices),
        }
        self.kubelet = ProcessKubelet(
            apiserver,
            image_environment(tmp_path / "container"),
            tmp_path / "pod-logs",
            nodes=set(NODES),
        )

    def environment(self, home: Path, **kw: Any) -> Any:
        fate = {**self.fate, **kw.pop("fate", {})}
        return airflow_environment(
            home, fate=fate, extra_env={"KUBECONFIG": str(self.kubeconfig)}, **kw
        )


# -- the example DAG on worker pods ------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [GpuMode.ENV_PIN, pytest.param(GpuMode.DRA, marks=pytest.mark.campaign)],
    ids=lambda m: m.value,
)
def test_example_dag_runs_warm_on_worker_pods(
    mode: GpuMode, apiserver: FakeApiServer, tmp_path: Path, work_dir: Path
) -> None:
    cluster = Cluster(apiserver, tmp_path, work_dir, mode)
    t0 = time.monotonic()
    with cluster.kubelet, cluster.environment(tmp_path / "home") as env:
        write_pod_template(cluster.template, env)
        start(env)
        runs = env.trigger([DAG_ID])
        [final] = env.wait_runs(runs, RUN_TIMEOUT_S)
        assert final.state == "success", failure_report(env, cluster.kubelet)
        assert env.wait_placements_closed([DAG_ID], 60.0)
        states = env.task_states(runs)
        assert {task for (_, _, task) in states} == TASKS
        assert set(states.values()) == {"success"}, states
        placements = env.placements([DAG_ID])
        assert_every_task_placed(env, runs, placements)
        live = [r for r in cluster.kubelet.runs.values() if r.popen.poll() is None]
        assert live, "the worker pods outlive the run"
        check_agents_refuse_unsigned_requests(live, cluster.port)
        scheduler_log = (env.logs / "scheduler.log").read_text(errors="replace")
    print(f"end to end on worker pods in {time.monotonic() - t0:.0f}s")
    # The scheduler stopped without detaching: it deleted its pods (and claims).
    wait_until(lambda: not apiserver.objects("pods", NAMESPACE), 60.0, "worker pods deleted")

    assert sorted(p.key.task_id for p in placements) == sorted(TASKS), "one placement per task"
    assert {(p.launcher, p.state) for p in placements} == {("kubernetes", "success")}
    pods = created_objects(apiserver, "pods")
    sets = {(p.node, p.gpus) for p in placements}
    names = [pod["metadata"]["name"] for pod in pods]
    assert sorted(names) == sorted(
        naming.worker_pod_name(n, g) for n, g in sets | cluster.single_gpus
    ), "a pod per GPU started with the scheduler, one per shard group in use, none per task"
    for pod in pods:
        check_worker_pod(pod, mode, cluster.kubelet.runs[(NAMESPACE, pod["metadata"]["name"])])
    if mode is GpuMode.DRA:
        claims = created_objects(apiserver, "resourceclaims")
        assert sorted(c["metadata"]["name"] for c in claims) == sorted(
            naming.claim_name(n) for n in names
        )
    check_warm_stages(placements)
    check_prefix_reuse(placements)
    check_secret_never_logged(apiserver, scheduler_log, cluster.kubelet)
    assert not cluster.kubelet.errors, cluster.kubelet.errors


def check_worker_pod(pod: dict[str, Any], mode: GpuMode, run: PodRun) -> None:
    """A worker pod: pinned like a stage pod, running the agent, its key from the Secret."""
    meta, spec = pod["metadata"], pod["spec"]
    node = spec["nodeSelector"]["kubernetes.io/hostname"]
    indices = [int(i) for i in meta["annotations"][naming.GPU_INDICES_ANNOTATION].split(",")]
    uuids = [uuid_of(node, i) for i in indices]
    assert meta["name"] == naming.worker_pod_name(node, tuple(indices))
    assert meta["labels"]["app.kubernetes.io/component"] == "gpu-worker"
    assert spec["serviceAccountName"] == "airflow-fate-worker"
    assert spec["automountServiceAccountToken"] is False
    assert run.argv == ["python", "-m", "airflow_fate.launch.agent"]
    assert run.env["FATE_GPU_UUIDS"] == ",".join(uuids)
    if mode is GpuMode.ENV_PIN:
        assert run.env["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids)
    else:
        assert run.visible_devices == tuple(uuids)
    [secret_ref] = [e for e in spec["containers"][0]["env"] if e["name"] == "FATE_AGENT_SECRET"]
    assert secret_ref["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": SECRET_KEY}


def check_warm_stages(placements: list[PlacementRow]) -> None:
    """On each GPU set the first stage loads the model; every later one finds it warm,
    as the planner predicted."""
    seen: set[tuple[str, tuple[int, ...]]] = set()
    warm = 0
    for p in sorted(placements, key=lambda p: p.start):
        measured = p.measured or {}
        where = (p.node, p.gpus)
        assert p.node == NODES[1], "the LLM fits only the second node's GPUs"
        assert measured.get("devices") == [uuid_of(p.node, i) for i in p.gpus]
        if where in seen:
            assert measured["model_warm"] is True and measured["load_s"] == 0, (p.key, measured)
            assert p.predicted["load"] == 0, (p.key, p.predicted)
            warm += 1
        else:
            assert measured["model_warm"] is False and measured["load_s"] > 0, (p.key, measured)
            assert p.predicted["load"] > 0, "a new pod: its start and a cold load"
            seen.add(where)
    assert warm >= len(placements) - len(seen) >= 2, "4 stages on at most 2 GPUs"


def check_prefix_reuse(placements: list[PlacementRow]) -> None:
    """``revise`` shares ``draft``'s system prompt: it follows draft to its pod and reuses
    the prompt's KV there."""
    by_task = {p.key.task_id: p for p in placements}
    draft, revise = by_task["draft"], by_task["revise"]
    assert revise.gpus == draft.gpus, "the planner followed the warm prefix"
    measured = revise.measured or {}
    assert measured["prefix_warm"] is True, measured
    assert measured["reused_prefix_tokens"] > 0, measured


def check_agents_refuse_unsigned_requests(live: list[PodRun], port: int) -> None:
    """Unsigned or wrongly signed work is refused by every agent, and nothing runs."""
    forger = Secret("a-guess-at-the-key-a-guess-at-the-key")
    for run in live:
        marker = Path(run.env["HOME"]) / f"forged-{run.name}"
        body = (
            TaskSubmission(
                key=WireKey.of(TaskKey("evil", "task", "run", 1)),
                command=["sh", "-c", f"touch {marker}"],
            )
            .model_dump_json()
            .encode()
        )
        for headers in ({}, forger.headers("POST", "/v1/tasks", body, time.time())):
            conn = http.client.HTTPConnection(run.ip, port, timeout=10)
            conn.request("POST", "/v1/tasks", body=body, headers=headers)
            response = conn.getresponse()
            assert response.status == 401, run.name
            assert json.loads(response.read()) == {"error": "unauthorized"}
            conn.close()
        time.sleep(0.5)
        assert not marker.exists(), f"a refused request ran in {run.name}"
        assert run.log().count("refused POST /v1/tasks") == 2


def check_secret_never_logged(
    apiserver: FakeApiServer, scheduler_log: str, kubelet: ProcessKubelet
) -> None:
    secret = apiserver.get("secrets", NAMESPACE, SECRET_NAME)
    assert secret is not None, "the executor created the agent key Secret"
    key = base64.b64decode(secret["data"][SECRET_KEY]).decode()
    assert len(key) >= 32
    assert key not in scheduler_log
    for run in [*kubelet.past_runs, *kubelet.runs.values()]:
        assert key not in run.log(), run.name


# -- restart and faults ------------------------------------------------------------------


@pytest.mark.campaign
def test_a_scheduler_restart_adopts_worker_pods_and_loses_nothing(
    apiserver: FakeApiServer, tmp_path: Path, work_dir: Path
) -> None:
    cluster = Cluster(apiserver, tmp_path, work_dir, GpuMode.ENV_PIN)
    home = tmp_path / "home"
    with cluster.kubelet, cluster.environment(home, fate={"detach_on_end": "True"}) as env:
        write_pod_template(cluster.template, env)
        start(env)
        runs = env.trigger([DAG_ID])
        wait_for(lambda: env.task_states(runs).get((DAG_ID, runs[0].run_id, "draft")) == "running")
        env.stop_service("scheduler")
        stopped = env.placements([DAG_ID])
        assert [(p.key.task_id, p.end) for p in stopped] == [("draft", None)]

        env.start_service("scheduler-2", ["scheduler"])
        [final] = env.wait_runs(runs, RUN_TIMEOUT_S)
        assert final.state == "success", failure_report(env, cluster.kubelet)
        assert env.wait_placements_closed([DAG_ID], 60.0)
        placements = env.placements([DAG_ID])
        assert_every_task_placed(env, runs, placements)
        log = (env.logs / "scheduler-2.log").read_text(errors="replace")

    assert sorted(p.key.task_id for p in placements) == sorted(TASKS), "each task once"
    assert {p.key.try_number for p in placements} == {1}, "no task reset and run again"
    assert {p.state for p in placements} == {"success"}
    added = [
        e.new["metadata"]["name"]
        for e in history(apiserver)
        if e.type == "ADDED" and e.resource == "pods"
    ]
    assert len(added) == len(set(added)), "no worker pod created twice"
    assert "FATE executor adopted 1 of" in log
    assert "restored 1 resident models" in log, "draft's model, from fate_residency"
    draft = next(p for p in placements if p.key.task_id == "draft")
    after = [p for p in placements if p.key.task_id != "draft" and p.gpus == draft.gpus]
    assert after and all((p.measured or {}).get("model_warm") for p in after), (
        "the adopted pod kept draft's model for the stages after the restart"
    )


RETRY_DAG = """
from datetime import timedelta

from airflow.sdk import DAG

from airflow_fate.operators import LLMStageOperator

with DAG(
    "fate_worker_pod_retry",
    schedule=None,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as dag:
    LLMStageOperator(
        task_id="answer",
        model="smollm2-135m-instruct",
        system_prompt="You are a patient teacher.",
        prompt="Explain, step by step, how a GPU runs a neural network.",
        max_new_tokens=64,
    )
"""


@pytest.mark.campaign
def test_a_worker_pod_deleted_mid_stage_fails_the_try_and_the_retry_succeeds(
    apiserver: FakeApiServer, tmp_path: Path, work_dir: Path
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "worker_pod_retry.py").write_text(RETRY_DAG, encoding="utf-8")
    # Pods on first use: the only pod is the stage's, and the retry's is a new one.
    cluster = Cluster(apiserver, tmp_path, work_dir, GpuMode.ENV_PIN, prestart=False)
    with cluster.kubelet, cluster.environment(tmp_path / "home", dags_folder=dags) as env:
        write_pod_template(cluster.template, env)
        start(env)
        runs = env.trigger(["fate_worker_pod_retry"])
        answer = (runs[0].dag_id, runs[0].run_id, "answer")
        wait_for(lambda: env.task_states(runs).get(answer) == "running")
        time.sleep(1.0)  # the task runs its stage: the model is loading in the device worker
        [victim] = [r for r in cluster.kubelet.runs.values() if r.popen.poll() is None]
        apiserver.delete("pods", NAMESPACE, victim.name, grace=1)

        [final] = env.wait_runs(runs, RUN_TIMEOUT_S)
        assert final.state == "success", failure_report(env, cluster.kubelet)
        assert env.wait_placements_closed(["fate_worker_pod_retry"], 60.0)
        placements = sorted(env.placements(["fate_worker_pod_retry"]), key=lambda p: p.start)
        log = (env.logs / "scheduler.log").read_text(errors="replace")

    assert [p.key.try_number for p in placements] == [1, 2]
    first, retry = placements
    assert first.state != "success" and retry.state == "success"
    reason = f"worker pod {victim.name} on node {victim.node} was deleted"
    assert reason in log, "the try failed with a reason naming the pod and node"
    assert "lost their worker" in log
    assert (retry.measured or {}).get("model_warm") is False
    assert retry.predicted["load"] > 0, "the planner dropped the lost pod's state"
    pods = [p["metadata"]["name"] for p in created_objects(apiserver, "pods")]
    assert len(pods) == 2, "the retry got a new pod"


def failure_report(env: Any, kubelet: ProcessKubelet) -> str:
    """The pod-per-stage report plus what ran inside the worker pods: each task
    process's output and each device worker's log (under the agents' work directory)."""
    lines = [pod_failure_report(env, kubelet)]
    for run in [*kubelet.past_runs, *kubelet.runs.values()]:
        config = json.loads(run.env.get("FATE_AGENT_CONFIG", "{}"))
        pod_dir = Path(config.get("work_dir", "/nonexistent")) / run.name
        for log in sorted(pod_dir.glob("*.log")) + sorted(pod_dir.glob("tasks/*.log")):
            text = log.read_text(errors="replace")[-2500:]
            lines.append(f"--- {run.name} {log.relative_to(pod_dir)}:\n{text}")
    return "\n".join(lines)


def wait_for(condition: Any, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.5)
