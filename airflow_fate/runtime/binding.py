"""What a device worker is bound to, fixed when it is spawned: devices and budgets.

A launcher builds a `WorkerConfig` per device set and passes it as JSON on the worker's
command line; `worker_env` gives the environment that pins the process to those devices
(``CUDA_VISIBLE_DEVICES``) and sizes its CPU thread pool before torch is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceBinding(_Config):
    """The device set of one worker and its memory budgets.

    Attributes:
        ids: stable device ids the launcher uses in `RunStage.devices` (GPU UUIDs, or
            virtual ids such as ``cpu0``).
        platform: ``cuda`` for GPUs, ``cpu`` for (virtual) CPU devices.
        cuda_indices: physical CUDA indices, exported as ``CUDA_VISIBLE_DEVICES``.
        memory_bytes: budget for resident weights plus the running stage's KV (the
            cluster's ``usable_fraction`` of device memory).
        prefix_bytes: budget for prefix KV kept between stages.
        threads: CPU threads for torch; None leaves torch's default.
    """

    ids: list[str] = Field(min_length=1)
    platform: Literal["cpu", "cuda"]
    cuda_indices: list[int] = Field(default_factory=list)
    memory_bytes: int = Field(gt=0)
    prefix_bytes: int = Field(ge=0)
    threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _cuda_indices_match(self) -> DeviceBinding:
        if self.platform == "cuda" and len(self.cuda_indices) != len(self.ids):
            raise ValueError(
                f"a cuda binding needs one cuda index per device id "
                f"({len(self.ids)} ids, {len(self.cuda_indices)} indices)"
            )
        return self

    @property
    def label(self) -> str:
        return ",".join(self.ids)


class WorkerConfig(_Config):
    """Everything a worker process needs at start.

    Attributes:
        binding: its devices and budgets.
        socket_path: Unix socket it listens on; launchers connect to it.
        linger_s: how long to wait for a new launcher after one disconnects (0: exit at
            once). A lingering worker can be adopted by a restarted launcher.
        accept_timeout_s: how long to wait for the first launcher before exiting.
    """

    binding: DeviceBinding
    socket_path: str = Field(min_length=1)
    linger_s: float = Field(default=0.0, ge=0)
    accept_timeout_s: float = Field(default=60.0, gt=0)


def worker_env(binding: DeviceBinding, base: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: ``base`` pinned to the binding's devices, offline.

    CPU workers get an empty ``CUDA_VISIBLE_DEVICES`` so torch never touches a GPU, and
    thread counts for OpenMP/MKL so several virtual devices share the cores instead of
    each oversubscribing them. Hub access is switched off: models load from local disk.
    """
    env = dict(base)
    if binding.platform == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in binding.cuda_indices)
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if binding.threads is not None:
        env["OMP_NUM_THREADS"] = str(binding.threads)
        env["MKL_NUM_THREADS"] = str(binding.threads)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
