"""One device worker as seen from the launcher: its process, its socket, its reader.

A `WorkerProcess` spawns ``python -m airflow_fate.runtime.worker`` pinned to a device
set (or attaches to one a previous launcher left lingering), connects to its Unix socket
and runs a reader thread that turns every frame into an `Inbound` on the launcher's
queue. The thread also reports the end of the connection (``message`` None), which is
how a crashed or killed worker is noticed. All decisions stay in the launcher's thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

from pydantic import ValidationError

from airflow_fate.launch.processes import pid_alive, spawn_worker
from airflow_fate.runtime.binding import WorkerConfig
from airflow_fate.runtime.protocol import (
    Hello,
    ProtocolError,
    RunStage,
    Shutdown,
    StageFailure,
    StageResult,
    StageStarted,
    parse_from_worker,
    read_frame,
    send,
)

FromWorker = Hello | StageStarted | StageResult | StageFailure
_CONNECT_RETRY_S = 0.05


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from a worker, or (``message`` None) the end of its connection."""

    slot: tuple[int, ...]
    generation: int
    message: FromWorker | None
    error: str = ""


class WorkerProcess:
    """A spawned (or attached) worker and the connection to it."""

    def __init__(
        self,
        slot: tuple[int, ...],
        generation: int,
        socket_path: Path,
        log_path: Path,
        inbox: Queue[Inbound],
    ) -> None:
        self.slot = slot
        self.generation = generation
        self.socket_path = socket_path
        self.log_path = log_path
        self.pid: int | None = None
        self._inbox = inbox
        self._popen: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._closing = False

    # -- starting --------------------------------------------------------------------

    def spawn(self, config: WorkerConfig, connect_timeout_s: float) -> None:
        """Start the worker process and the thread that connects to it and reads."""
        self._popen = spawn_worker(config, os.environ, self.log_path, new_session=False)
        self.pid = self._popen.pid
        self._start_reader(connect_timeout_s)

    def attach(self, connect_timeout_s: float) -> None:
        """Connect to a worker an earlier launcher left running (its pid comes in Hello)."""
        self._start_reader(connect_timeout_s)

    def _start_reader(self, connect_timeout_s: float) -> None:
        thread = threading.Thread(
            target=self._read_loop,
            args=(connect_timeout_s,),
            name=f"fate-worker-{'-'.join(map(str, self.slot))}",
            daemon=True,
        )
        thread.start()

    def _connect(self, timeout_s: float) -> socket.socket:
        deadline = time.monotonic() + timeout_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
                return sock
            except OSError as exc:
                sock.close()
                if self._closing or self.exited() or time.monotonic() > deadline:
                    raise ConnectionError(f"cannot connect to {self.socket_path}: {exc}") from None
            time.sleep(_CONNECT_RETRY_S)

    def _read_loop(self, connect_timeout_s: float) -> None:
        try:
            self._sock = self._connect(connect_timeout_s)
            while True:
                payload = read_frame(self._sock)
                if payload is None:
                    break
                msg = parse_from_worker(payload)
                if isinstance(msg, Hello) and self.pid is None:
                    self.pid = msg.pid
                self._inbox.put(Inbound(self.slot, self.generation, msg))
        except (OSError, ProtocolError, ValidationError) as exc:
            self._inbox.put(Inbound(self.slot, self.generation, None, str(exc)))
            return
        self._inbox.put(Inbound(self.slot, self.generation, None, "connection closed"))

    # -- talking ---------------------------------------------------------------------

    def send(self, message: RunStage | Shutdown) -> bool:
        """Send a message; False when the connection is gone (the reader reports why)."""
        if self._sock is None:
            return False
        try:
            send(self._sock, message)
        except OSError:
            return False
        return True

    # -- ending ----------------------------------------------------------------------

    def exited(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is not None
        return self.pid is not None and not pid_alive(self.pid)

    def describe_exit(self, wait_s: float = 5.0) -> str:
        """How the process ended (waiting up to ``wait_s`` for it), in words."""
        if self._popen is None:
            return "lost its connection"
        try:
            code = self._popen.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return "closed its connection but is still running"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def kill(self) -> None:
        """SIGKILL the worker and reap it; a no-op if it is gone."""
        self._closing = True
        self._close_socket()
        if self._popen is not None:
            if self._popen.poll() is None:
                self._popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=10)
        elif self.pid is not None and pid_alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def request_stop(self) -> None:
        """Ask the worker to exit once its current stage (if any) is done."""
        self.send(Shutdown())
        self._closing = True

    def stop(self, timeout_s: float) -> None:
        """Ask the worker to exit, wait up to ``timeout_s``, then kill it."""
        self.request_stop()
        self.wait_exit(timeout_s)
        self.kill()

    def wait_exit(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the process to end; whether it did."""
        deadline = time.monotonic() + timeout_s
        while not self.exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def detach(self) -> None:
        """Drop the connection and leave the process running (it may linger for adoption)."""
        self._closing = True
        self._close_socket()

    def _close_socket(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
