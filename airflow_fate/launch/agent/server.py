"""The task agent of a worker pod (``python -m airflow_fate.launch.agent``).

It owns the pod's device worker and the task processes the executor hands it. Every
request except ``GET /healthz`` must be signed (`auth`); anything else is answered 401
and changes nothing. Routes, all answering the pod's `AgentState`:

* ``GET /v1/state``: what the device worker holds and which tasks run or ended;
* ``POST /v1/tasks`` (`TaskSubmission`): start a task process (201), or 409 when this
  try is already known here (a repeated or replayed submission never runs twice);
* ``POST /v1/tasks/cancel`` (`TaskKeys`): stop task processes (SIGTERM, then SIGKILL);
* ``POST /v1/tasks/forget`` (`TaskKeys`): drop ended tasks the executor has recorded.

Ended tasks are kept until forgotten, so a scheduler that restarts learns what finished
while it was away. What the worker holds is asked of the worker itself (its `Hello`)
whenever no task is using it; while one is, the last answer stands.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.agent.messages import (
    AgentConfig,
    AgentState,
    TaskKeys,
    TaskReport,
    TaskSubmission,
    WireKey,
    WorkerReport,
)
from airflow_fate.launch.processes import TaskProcesses, spawn_worker, stop_group
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.placement import DevicePlacement
from airflow_fate.runtime.binding import WorkerConfig
from airflow_fate.runtime.protocol import Hello, ProtocolError, parse_from_worker, read_frame

log = logging.getLogger("airflow_fate.agent")

MAX_BODY_BYTES = 8 * 1024 * 1024
WORKER_LIFETIME_S = 10.0 * 365 * 24 * 3600
"""A pod's device worker never leaves by itself: the executor expires idle pods."""
HELLO_TIMEOUT_S = 60.0
"""How long the background check waits for the worker's greeting (it imports torch
before its first one)."""
REFRESH_INTERVAL_S = 0.5


class DeviceWorker(Protocol):
    """The pod's device worker, as the agent drives it."""

    @property
    def socket_path(self) -> str: ...

    def ensure_running(self) -> None:
        """Start it if it is not running (a restart after the first start)."""
        ...

    def alive(self) -> bool: ...

    def report(self) -> WorkerReport:
        """Its state, with what it held when last asked (never blocks)."""
        ...

    def refresh_resident(self) -> bool:
        """Ask it what it holds now (blocks); whether it answered."""
        ...

    def stop(self) -> None: ...


class SpawnedWorker:
    """The device worker as a child process of the agent (`spawn_worker`)."""

    def __init__(
        self,
        config: WorkerConfig,
        env: Mapping[str, str],
        log_path: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._env = dict(env)
        self._log_path = log_path
        self._clock = clock
        self._t0 = clock()
        self._popen: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._resident: list[str] = []
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    @property
    def socket_path(self) -> str:
        return self.config.socket_path

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def ensure_running(self) -> None:
        with self._lock:
            if self.alive():
                return
            if self._starts:
                log.warning("device worker exited (%s); starting it again", self._exit())
                self._resident, self._checked_at = [], None
            self._popen = spawn_worker(self.config, self._env, self._log_path, new_session=True)
            self._starts += 1

    def report(self) -> WorkerReport:
        return WorkerReport(
            alive=self.alive(),
            pid=self._popen.pid if self._popen is not None else None,
            restarts=max(self._starts - 1, 0),
            resident=list(self._resident),
            checked_at=self._checked_at,
        )

    def refresh_resident(self) -> bool:
        """Connect, read the worker's `Hello` (it names its resident models), leave."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(HELLO_TIMEOUT_S)
        try:
            sock.connect(self.socket_path)
            payload = read_frame(sock)
            hello = parse_from_worker(payload) if payload is not None else None
        except (OSError, ProtocolError, ValidationError) as exc:
            log.info("device worker not answering yet: %s", exc)
            return False
        finally:
            sock.close()
        if not isinstance(hello, Hello):
            return False
        self._resident = list(hello.resident)
        self._checked_at = round(self._clock() - self._t0, 3)
        return True

    def _exit(self) -> str:
        code = None if self._popen is None else self._popen.poll()
        return f"exit code {code}"

    def stop(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            stop_group(self._popen.pid, 5.0, self._popen)


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status and JSON body."""

    status: int
    body: bytes


class TaskAgent:
    """Runs the executor's task processes beside the pod's device worker.

    Args:
        config: the pod's identity and devices.
        secret: the shared secret requests must be signed with.
        worker: the device worker.
        base_env: environment of task processes (the pod's, without the secret).
        wall: Unix time, to check request timestamps (injected in tests).
    """

    def __init__(
        self,
        config: AgentConfig,
        secret: Secret,
        worker: DeviceWorker,
        base_env: Mapping[str, str],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._secret = secret
        self.worker = worker
        self._base_env = dict(base_env)
        self._wall = wall
        self.tasks = TaskProcesses(Path(config.pod_dir) / "tasks")
        self._ended: dict[TaskKey, TaskReport] = {}
        self._lock = threading.Lock()
        self._stale = True
        self.refused = 0

    # -- requests ----------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, peer: str = "?"
    ) -> Answer:
        """Authenticate a request, then serve it (see the module docstring)."""
        if method == "GET" and path == "/healthz":
            return Answer(200, b'{"ok": true}')
        refusal = self._secret.refusal(method, path, headers, body, self._wall())
        if refusal is not None:
            self.refused += 1
            log.warning("refused %s %s from %s: %s", method, path, peer, refusal)
            return _error(401, "unauthorized")
        try:
            return self._route(method, path, body)
        except ValidationError as exc:
            return _error(400, f"malformed request: {exc.errors()[0]['msg']}")

    def _route(self, method: str, path: str, body: bytes) -> Answer:
        if method == "GET" and path == "/v1/state":
            return self._answer(200)
        if method == "POST" and path == "/v1/tasks":
            return self.submit(TaskSubmission.model_validate_json(body))
        if method == "POST" and path == "/v1/tasks/cancel":
            self.cancel([k.task_key() for k in TaskKeys.model_validate_json(body).keys])
            return self._answer(200)
        if method == "POST" and path == "/v1/tasks/forget":
            self.forget([k.task_key() for k in TaskKeys.model_validate_json(body).keys])
            return self._answer(200)
        return _error(404, f"no route {method} {path}")

    # -- actions -----------------------------------------------------------------------

    def submit(self, submission: TaskSubmission) -> Answer:
        """Start a task process; 409 (and nothing started) for a try already known."""
        key = submission.key.task_key()
        with self._lock:
            self._collect()
            known = key in self.tasks or key in self._ended
            if not known:
                self.worker.ensure_running()
                argv = list(submission.command)
                if argv[0] == "python":
                    argv[0] = sys.executable
                pid = self.tasks.spawn(key, argv, self._task_env(submission.env))
                self._stale = True
                log.info("started %s as pid %d", key, pid)
        return self._answer(409 if known else 201)

    def cancel(self, keys: list[TaskKey]) -> None:
        for key in keys:
            if self.tasks.stop(key):
                log.info("cancelled %s", key)

    def forget(self, keys: list[TaskKey]) -> None:
        with self._lock:
            for key in keys:
                self._ended.pop(key, None)

    def state(self) -> AgentState:
        with self._lock:
            self._collect()
            # A worker that died (killed for memory, crashed) is replaced at once, so the
            # restart, and with it the loss of what it held, is reported now.
            self.worker.ensure_running()
            running = [
                TaskReport(key=WireKey.of(k), pid=pid, running=True, seconds=s)
                for k, pid, s in self.tasks.running()
            ]
            ended = list(self._ended.values())
            current = not running and not self._stale
        report = self.worker.report()
        return AgentState(
            pod=self.config.pod,
            node=self.config.node,
            gpu_indices=self.config.gpu_indices,
            gpu_uuids=self.config.gpu_uuids,
            worker=report.model_copy(update={"current": current and report.checked_at is not None}),
            tasks=running + ended,
        )

    def refresh(self) -> bool:
        """Ask the device worker what it holds, if no task uses it and something may
        have changed since the last answer; whether it was asked and answered.

        Asking takes the worker's one connection for a moment, so it happens in the
        background (`refresh_forever`), never inside a request.
        """
        with self._lock:
            self._collect()
            if len(self.tasks) or not self._stale or not self.worker.alive():
                return False
            self._stale = False
        if self.worker.refresh_resident():
            return True
        self._stale = True
        return False

    def refresh_forever(self, stop: threading.Event) -> None:
        while not stop.wait(REFRESH_INTERVAL_S):
            self.refresh()

    def shutdown(self) -> None:
        """Stop every task process and the device worker (the pod is going away)."""
        self.tasks.stop_all()
        self.worker.stop()

    # -- internals ---------------------------------------------------------------------

    def _collect(self) -> None:
        for ended in self.tasks.poll():
            self._stale = True
            self._ended[ended.key] = TaskReport(
                key=WireKey.of(ended.key),
                pid=ended.pid,
                running=False,
                exit_code=ended.code,
                seconds=round(ended.seconds, 3),
            )
            log.info("%s ended with exit code %s", ended.key, ended.code)

    def _task_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The pod's environment, the request's, and the placement the operator reads."""
        binding = self.config.binding
        placement = DevicePlacement(
            node=self.config.node,
            gpu_indices=tuple(self.config.gpu_indices),
            device_ids=tuple(binding.ids),
            worker_socket=self.worker.socket_path,
            timeout_s=self.config.stage_timeout_s,
        )
        env = dict(self._base_env)
        env.update(extra)
        env.update(placement.to_env())
        env["FATE_GPU_UUIDS"] = ",".join(self.config.gpu_uuids)
        if binding.platform == "cuda":
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, binding.cuda_indices))
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def _answer(self, status: int) -> Answer:
        return Answer(status, self.state().model_dump_json().encode("utf-8"))


def _error(status: int, message: str) -> Answer:
    return Answer(status, json.dumps({"error": message}).encode("utf-8"))


def serve(agent: TaskAgent, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``agent`` on ``host:port`` (call ``serve_forever``)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # requests are logged by the agent, without headers

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                answer = _error(413, "request too large")
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                answer = agent.handle(method, self.path, headers, body, self.client_address[0])
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def without(env: Mapping[str, str], *names: str) -> dict[str, str]:
    """``env`` minus ``names`` (the secret never reaches a task or the device worker)."""
    return {k: v for k, v in env.items() if k not in names}
