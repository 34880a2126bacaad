"""The worker pod's task agent: signed requests only, task processes, reports.

The agent runs real task processes (small Python commands standing in for the Task
SDK's ``execute_workload``); its device worker is a recording double here (the real one
runs in the Kubernetes end-to-end test).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_fate.launch.agent.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, Secret
from airflow_fate.launch.agent.client import AgentClient, AgentError
from airflow_fate.launch.agent.messages import (
    AgentConfig,
    AgentState,
    TaskSubmission,
    WireKey,
    WorkerReport,
)
from airflow_fate.launch.agent.server import TaskAgent, serve
from airflow_fate.launch.types import TaskKey
from airflow_fate.runtime.binding import DeviceBinding

SECRET = Secret("s3cret-s3cret-s3cret-s3cret")
OTHER = Secret("another-secret-another-secret")


class RecordingWorker:
    """Stands in for the device worker: counts starts, reports what it was told."""

    socket_path = "/run/fate/worker.sock"

    def __init__(self) -> None:
        self.starts = 0
        self.asked = 0
        self.stopped = False

    def ensure_running(self) -> None:
        if self.starts == 0:
            self.starts += 1

    def alive(self) -> bool:
        return self.starts > 0

    def report(self) -> WorkerReport:
        resident = ["smollm2"] if self.asked else []
        checked = 1.0 if self.asked else None
        return WorkerReport(alive=self.alive(), pid=4242, resident=resident, checked_at=checked)

    def refresh_resident(self) -> bool:
        self.asked += 1
        return True

    def stop(self) -> None:
        self.stopped = True


def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        pod="fate-worker-gpu-node-b-1",
        node="gpu-node-b",
        gpu_indices=[1],
        gpu_uuids=["GPU-b-1"],
        binding=DeviceBinding(
            ids=["GPU-b-1"], platform="cpu", memory_bytes=1 << 30, prefix_bytes=0
        ),
        port=1,
        work_dir=str(tmp_path / "agent"),
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[TaskAgent]:
    made = TaskAgent(config(tmp_path), SECRET, RecordingWorker(), {"PATH": "/usr/bin"})
    yield made
    made.shutdown()


def key(task: str = "draft") -> TaskKey:
    return TaskKey("fate_multi_agent_review", task, "manual__1", 1)


def writes_env(path: Path) -> list[str]:
    """A task command that records its environment and exits 0."""
    code = f"import json, os; open({str(path)!r}, 'w').write(json.dumps(dict(os.environ)))"
    return ["python", "-c", code]


def submission(task_key: TaskKey, command: list[str]) -> bytes:
    return (
        TaskSubmission(key=WireKey.of(task_key), command=command, env={"FROM_EXECUTOR": "1"})
        .model_dump_json()
        .encode()
    )


def signed(secret: Secret, method: str, path: str, body: bytes) -> dict[str, str]:
    return secret.headers(method, path, body, time.time())


def wait_ended(agent: TaskAgent, task_key: TaskKey) -> AgentState:
    deadline = time.monotonic() + 30
    while True:
        state = agent.state()
        report = state.task(task_key)
        if report is not None and not report.running:
            return state
        assert time.monotonic() < deadline, "task did not end"
        time.sleep(0.05)


# -- authentication ----------------------------------------------------------------------


def test_signatures_check_method_path_time_and_body() -> None:
    body = b'{"a": 1}'
    headers = SECRET.headers("POST", "/v1/tasks", body, now=1000.0)
    assert SECRET.refusal("POST", "/v1/tasks", headers, body, now=1001.0) is None
    lowered = {k.lower(): v for k, v in headers.items()}
    assert SECRET.refusal("POST", "/v1/tasks", lowered, body, now=1001.0) is None
    assert SECRET.refusal("POST", "/v1/tasks", headers, b'{"a": 2}', 1001.0) == "bad signature"
    assert SECRET.refusal("POST", "/v1/state", headers, body, 1001.0) == "bad signature"
    assert SECRET.refusal("GET", "/v1/tasks", headers, body, 1001.0) == "bad signature"
    assert OTHER.refusal("POST", "/v1/tasks", headers, body, 1001.0) == "bad signature"
    stale = "stale or future timestamp"
    assert SECRET.refusal("POST", "/v1/tasks", headers, body, now=2000.0) == stale
    assert SECRET.refusal("POST", "/v1/tasks", {}, body, 1000.0) == "missing signature"
    bad_time = {**headers, TIMESTAMP_HEADER: "soon"}
    assert SECRET.refusal("POST", "/v1/tasks", bad_time, body, 1000.0) == "malformed timestamp"


def test_the_secret_never_shows_in_text() -> None:
    assert "s3cret" not in repr(SECRET) and "s3cret" not in str(SECRET)
    assert "s3cret" not in f"{SECRET}"
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Secret("short")
    assert Secret.generate().reveal() != Secret.generate().reveal()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: {}, id="unsigned"),
        pytest.param(lambda body: signed(OTHER, "POST", "/v1/tasks", body), id="forged"),
        pytest.param(
            lambda body: {
                **signed(SECRET, "POST", "/v1/tasks", b"{}"),
                TIMESTAMP_HEADER: f"{time.time():.3f}",
            },
            id="signature-of-another-request",
        ),
        pytest.param(
            lambda body: {
                TIMESTAMP_HEADER: f"{time.time() - 3600:.3f}",
                SIGNATURE_HEADER: SECRET.sign(
                    "POST", "/v1/tasks", f"{time.time() - 3600:.3f}", body
                ),
            },
            id="replayed-late",
        ),
    ],
)
def test_unauthenticated_or_forged_submissions_run_nothing(
    agent: TaskAgent, tmp_path: Path, headers: object
) -> None:
    marker = tmp_path / "ran.json"
    body = submission(key(), writes_env(marker))
    answer = agent.handle("POST", "/v1/tasks", headers(body), body)  # type: ignore[operator]
    assert answer.status == 401
    assert json.loads(answer.body) == {"error": "unauthorized"}, "nothing about the pod leaks"
    assert len(agent.tasks) == 0 and agent.refused == 1
    assert isinstance(agent.worker, RecordingWorker) and agent.worker.starts == 0
    time.sleep(0.3)
    assert not marker.exists(), "no process ran"


def test_state_needs_a_signature_too_but_health_does_not(agent: TaskAgent) -> None:
    assert agent.handle("GET", "/v1/state", {}, b"").status == 401
    assert agent.handle("GET", "/healthz", {}, b"").status == 200


# -- running tasks -----------------------------------------------------------------------


def test_a_signed_task_runs_beside_the_device_worker(agent: TaskAgent, tmp_path: Path) -> None:
    marker = tmp_path / "env.json"
    body = submission(key(), writes_env(marker))
    answer = agent.handle("POST", "/v1/tasks", signed(SECRET, "POST", "/v1/tasks", body), body)
    assert answer.status == 201
    assert isinstance(agent.worker, RecordingWorker) and agent.worker.starts == 1
    state = wait_ended(agent, key())
    report = state.task(key())
    assert report is not None and report.exit_code == 0
    env = json.loads(marker.read_text())
    assert env["FROM_EXECUTOR"] == "1" and env["PATH"] == "/usr/bin"
    assert env["FATE_WORKER_SOCKET"] == "/run/fate/worker.sock"
    assert (env["FATE_NODE"], env["FATE_GPU_INDICES"]) == ("gpu-node-b", "1")
    assert env["FATE_DEVICE_IDS"] == "GPU-b-1" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert not any("s3cret" in v for v in env.values()), "the secret never reaches a task"
    assert not state.worker.current, "not asked since the task ended"
    assert agent.refresh(), "asked once no task uses the worker"
    assert not agent.refresh(), "not again until something changed"
    assert agent.state().worker.resident == ["smollm2"]
    assert agent.state().worker.current


def test_a_try_already_known_is_never_started_again(agent: TaskAgent, tmp_path: Path) -> None:
    body = submission(key(), writes_env(tmp_path / "once.json"))
    first = agent.handle("POST", "/v1/tasks", signed(SECRET, "POST", "/v1/tasks", body), body)
    wait_ended(agent, key())
    again = agent.handle("POST", "/v1/tasks", signed(SECRET, "POST", "/v1/tasks", body), body)
    assert (first.status, again.status) == (201, 409)
    assert len(agent.state().tasks) == 1


def test_failed_exit_codes_cancel_and_forget(agent: TaskAgent) -> None:
    failing, slow = key("fails"), key("sleeps")
    for k, code in ((failing, "raise SystemExit(3)"), (slow, "import time; time.sleep(60)")):
        body = submission(k, ["python", "-c", code])
        answer = agent.handle("POST", "/v1/tasks", signed(SECRET, "POST", "/v1/tasks", body), body)
        assert answer.status == 201
    report = wait_ended(agent, failing).task(failing)
    assert report is not None and report.exit_code == 3
    running = agent.state().task(slow)
    assert running is not None and running.running
    assert not agent.refresh(), "busy: the worker is not asked"
    agent.cancel([slow])
    report = wait_ended(agent, slow).task(slow)
    assert report is not None and report.exit_code is not None and report.exit_code < 0
    agent.forget([failing, slow])
    assert agent.state().tasks == []


# -- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def served(agent: TaskAgent) -> Iterator[int]:
    server = serve(agent, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_executor_client_over_http(agent: TaskAgent, served: int, tmp_path: Path) -> None:
    client = AgentClient("127.0.0.1", served, SECRET, timeout_s=5.0)
    assert client.state().pod == "fate-worker-gpu-node-b-1"
    sub = TaskSubmission(key=WireKey.of(key()), command=writes_env(tmp_path / "http.json"))
    started, state = client.submit(sub)
    assert started and state.task(key()) is not None
    again, _ = client.submit(sub)
    assert not again
    assert client.forget([key()]).pod == "fate-worker-gpu-node-b-1"

    forger = AgentClient("127.0.0.1", served, OTHER, timeout_s=5.0)
    other = TaskSubmission(key=WireKey.of(key("forged")), command=[sys.executable, "-V"])
    with pytest.raises(AgentError) as refused:
        forger.submit(other)
    assert refused.value.status == 401 and "unauthorized" in str(refused.value)
    assert agent.state().task(key("forged")) is None, "the forged request ran nothing"


def test_an_agent_nobody_listens_on_is_unreachable() -> None:
    client = AgentClient("127.0.0.1", 9, SECRET, timeout_s=1.0)
    with pytest.raises(AgentError) as err:
        client.state()
    assert err.value.unreachable
