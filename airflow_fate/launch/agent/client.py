"""The executor's side of the agent protocol: signed HTTP requests to one worker pod.

Stdlib ``http.client`` only; every call has a timeout, so a pod that stopped answering
costs the scheduler loop at most that long. Failures are one exception type that says
whether the agent could not be reached (the pod may be starting or gone) or answered
with a refusal (a wrong secret, a malformed request).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.agent.messages import AgentState, TaskKeys, TaskSubmission, WireKey
from airflow_fate.launch.types import TaskKey


class AgentError(Exception):
    """A request to an agent failed.

    Attributes:
        status: the HTTP status, or 0 when the agent could not be reached.
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.status == 0


class AgentClient:
    """Talks to the agent at ``host:port`` with requests signed by ``secret``."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: Secret,
        timeout_s: float,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self._secret = secret
        self._timeout_s = timeout_s
        self._wall = wall

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def state(self) -> AgentState:
        """What the pod holds and runs."""
        return self._call("GET", "/v1/state", b"")[1]

    def submit(self, submission: TaskSubmission) -> tuple[bool, AgentState]:
        """Hand over a task; ``(False, state)`` when the agent already had this try."""
        status, state = self._call(
            "POST", "/v1/tasks", submission.model_dump_json().encode(), accept=(201, 409)
        )
        return status == 201, state

    def cancel(self, keys: Sequence[TaskKey]) -> AgentState:
        return self._keys("/v1/tasks/cancel", keys)

    def forget(self, keys: Sequence[TaskKey]) -> AgentState:
        return self._keys("/v1/tasks/forget", keys)

    def _keys(self, path: str, keys: Sequence[TaskKey]) -> AgentState:
        body = TaskKeys(keys=[WireKey.of(k) for k in keys]).model_dump_json().encode()
        return self._call("POST", path, body)[1]

    def _call(
        self, method: str, path: str, body: bytes, accept: tuple[int, ...] = (200,)
    ) -> tuple[int, AgentState]:
        headers = self._secret.headers(method, path, body, self._wall())
        headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self._timeout_s)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise AgentError(f"agent at {self.address} unreachable: {exc}") from None
        finally:
            conn.close()
        if response.status not in accept:
            raise AgentError(
                f"agent at {self.address} answered {method} {path} with HTTP "
                f"{response.status}: {_message(data)}",
                response.status,
            )
        try:
            return response.status, AgentState.model_validate_json(data)
        except ValidationError as exc:
            raise AgentError(
                f"agent at {self.address} sent a malformed state: {exc.errors()[0]['msg']}",
                response.status,
            ) from None


def _message(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace")
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return str(doc)[:200]
