"""Run one stage on the device the executor chose, from inside the Airflow task process.

With the local launcher a long-lived device worker serves the device (it keeps models and
prefix KV warm across tasks); the task process connects to its socket, sends one
`RunStage` and waits for the outcome, using the worker protocol unchanged
(``docs/adr/0002-worker-protocol.md``). The worker serves one connection at a time, so a
stage whose predecessor's process is still disconnecting simply waits in the socket's
backlog. Without a worker (a Kubernetes stage pod, or a task run by another executor) the
stage runs in-process on the devices this process sees.
"""

from __future__ import annotations

import socket
import time

from airflow_fate.operators.placement import DevicePlacement
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import (
    Hello,
    ProtocolError,
    RunStage,
    StageFailure,
    StageRequest,
    StageResult,
    StageStarted,
    parse_from_worker,
    read_frame,
    send,
)

CONNECT_TIMEOUT_S = 60.0
"""How long to wait for the worker to accept us (it finishes its previous client first)."""

_IN_PROCESS_BUDGET_BYTES = 1 << 40


def run_stage(key: str, request: StageRequest, placement: DevicePlacement | None) -> StageResult:
    """Run ``request`` where ``placement`` says; raises `StageError` when it fails."""
    if placement is not None and placement.worker_socket is not None:
        return _via_worker(key, request, placement, placement.worker_socket)
    return _in_process(key, request, placement)


def _via_worker(
    key: str, request: StageRequest, placement: DevicePlacement, path: str
) -> StageResult:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S + placement.timeout_s
    sock = _connect(path)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        hello = _receive(sock, path)
        if not isinstance(hello, Hello):
            raise StageError("error", f"device worker at {path} did not greet first: {hello}")
        devices = list(placement.device_ids) or list(hello.devices)
        send(sock, RunStage(key=key, devices=devices, request=request))
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            msg = _receive(sock, path)
            if isinstance(msg, StageStarted | Hello):
                continue
            if msg.key != key:
                continue
            if isinstance(msg, StageFailure):
                raise StageError(msg.reason, msg.message)
            return msg
    except TimeoutError:
        raise StageError(
            "timeout", f"stage {key} got no outcome from the device worker at {path} in time"
        ) from None
    finally:
        sock.close()


def _connect(path: str) -> socket.socket:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as exc:
            sock.close()
            if time.monotonic() > deadline:
                raise StageError(
                    "worker-died", f"cannot reach the device worker at {path}: {exc}"
                ) from None
        time.sleep(0.1)


def _receive(sock: socket.socket, path: str) -> Hello | StageStarted | StageResult | StageFailure:
    try:
        payload = read_frame(sock)
    except ProtocolError as exc:
        raise StageError("worker-died", f"device worker at {path}: {exc}") from None
    if payload is None:
        raise StageError("worker-died", f"device worker at {path} closed the connection")
    return parse_from_worker(payload)


def _in_process(key: str, request: StageRequest, placement: DevicePlacement | None) -> StageResult:
    """Load and run the model in this process (no residency beyond this task)."""
    import os

    import torch

    from airflow_fate.runtime.binding import DeviceBinding
    from airflow_fate.runtime.device import DeviceRuntime

    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 1
    if placement is not None and placement.device_ids:
        ids = list(placement.device_ids)
    else:
        ids = [f"cuda:{i}" for i in range(count)] if cuda else ["cpu"]
    binding = DeviceBinding(
        ids=ids,
        platform="cuda" if cuda else "cpu",
        cuda_indices=list(range(len(ids))) if cuda else [],
        memory_bytes=_IN_PROCESS_BUDGET_BYTES,
        prefix_bytes=0,
        threads=int(os.environ["OMP_NUM_THREADS"]) if "OMP_NUM_THREADS" in os.environ else None,
    )
    runtime = DeviceRuntime(binding)
    return runtime.run(RunStage(key=key, devices=ids, request=request))
