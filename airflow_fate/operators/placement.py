"""Where the executor put a stage, as the task process's environment says it.

The executor's launcher chooses a node and GPUs and starts the Airflow task process
with these variables; the operator reads them to run its stage on exactly those devices.
Names match the Kubernetes stage pods' (``FATE_NODE``, ``FATE_GPU_INDICES``,
``FATE_GPU_UUIDS``, see ``launch/kubernetes/podspec.py``); the local launcher adds the
device worker's socket, so the stage runs in the long-lived worker that keeps models
and prefix KV warm, and its device ids.

No Airflow or torch imports: the executor writes these, the operator reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ENV_NODE = "FATE_NODE"
ENV_GPU_INDICES = "FATE_GPU_INDICES"
ENV_GPU_UUIDS = "FATE_GPU_UUIDS"
ENV_DEVICE_IDS = "FATE_DEVICE_IDS"
ENV_WORKER_SOCKET = "FATE_WORKER_SOCKET"
ENV_MODELS = "FATE_MODELS"
ENV_STAGE_TIMEOUT = "FATE_STAGE_TIMEOUT_S"

DEFAULT_STAGE_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class DevicePlacement:
    """The devices a stage was given.

    Attributes:
        node: cluster node name.
        gpu_indices: node-local GPU indices (as in ``cluster.yaml``).
        device_ids: ids the device worker answers to (GPU UUIDs or ``cpuN``).
        worker_socket: the device worker's Unix socket; None when the stage runs
            in-process (a Kubernetes pod, or a task run outside FateExecutor).
        models_path: the model catalog (``models.yaml``) the executor plans with.
        timeout_s: how long the stage may run on the device.
    """

    node: str
    gpu_indices: tuple[int, ...]
    device_ids: tuple[str, ...] = ()
    worker_socket: str | None = None
    models_path: str | None = None
    timeout_s: float = DEFAULT_STAGE_TIMEOUT_S

    def to_env(self) -> dict[str, str]:
        env = {
            ENV_NODE: self.node,
            ENV_GPU_INDICES: ",".join(str(i) for i in self.gpu_indices),
            ENV_DEVICE_IDS: ",".join(self.device_ids),
            ENV_STAGE_TIMEOUT: f"{self.timeout_s:g}",
        }
        if self.worker_socket is not None:
            env[ENV_WORKER_SOCKET] = self.worker_socket
        if self.models_path is not None:
            env[ENV_MODELS] = self.models_path
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DevicePlacement | None:
        """The placement in ``env``, or None when the task was not placed by FATE.

        Raises:
            ValueError: when the variables are present but malformed.
        """
        node = env.get(ENV_NODE)
        if not node:
            return None
        try:
            indices = tuple(int(x) for x in _split(env.get(ENV_GPU_INDICES, "")))
            timeout = float(env.get(ENV_STAGE_TIMEOUT) or DEFAULT_STAGE_TIMEOUT_S)
        except ValueError as exc:
            raise ValueError(f"malformed FATE placement in the environment: {exc}") from None
        ids = _split(env.get(ENV_DEVICE_IDS, "")) or _split(env.get(ENV_GPU_UUIDS, ""))
        return cls(
            node=node,
            gpu_indices=indices,
            device_ids=ids,
            worker_socket=env.get(ENV_WORKER_SOCKET) or None,
            models_path=env.get(ENV_MODELS) or None,
            timeout_s=timeout,
        )


def _split(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())
