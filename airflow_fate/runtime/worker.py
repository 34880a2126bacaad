"""The device worker process: ``python -m airflow_fate.runtime.worker --config JSON``.

It binds its Unix socket first (so a launcher can connect while torch is still being
imported; owner-only, see `runtime.owner_only`), then serves one launcher connection at a
time: `Hello`, then for each `RunStage` a `StageStarted` and one `StageResult` or
`StageFailure`. Stages run one at a time; the launcher queues.

When the launcher goes away the worker finishes the stage in hand, keeps its outcome and
waits ``linger_s`` for a new launcher (which receives the outcome in its `Hello`: that is
how a restarted scheduler adopts running stages); with ``linger_s`` 0 it exits, so a
dead launcher never leaves workers behind. A failure that may have damaged the process
(out of memory) makes it exit after reporting, and the launcher starts a fresh one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from airflow_fate.runtime.binding import WorkerConfig
from airflow_fate.runtime.errors import StageError, is_out_of_memory, memory_exhausted
from airflow_fate.runtime.owner_only import bind_owner_only, peer_uid, same_user
from airflow_fate.runtime.protocol import (
    Hello,
    ProtocolError,
    RunStage,
    Shutdown,
    StageFailure,
    StageResult,
    StageStarted,
    parse_to_worker,
    read_frame,
    send,
)

if TYPE_CHECKING:
    from airflow_fate.runtime.device import DeviceRuntime

log = logging.getLogger("airflow_fate.worker")

Outcome = StageResult | StageFailure


class Worker:
    """Serves launcher connections for one `DeviceRuntime`."""

    def __init__(self, config: WorkerConfig, server: socket.socket, runtime: DeviceRuntime):
        self.config = config
        self.server = server
        self.runtime = runtime
        self.undelivered: list[Outcome] = []
        self.replaced_after: StageFailure | None = None
        """The failure that left this worker's state suspect (it exits to be replaced)."""

    def serve(self) -> None:
        """Accept launchers until told to stop or none comes within the wait."""
        wait = self.config.accept_timeout_s
        while True:
            self.server.settimeout(wait)
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                log.info("no launcher within %.0f s; exiting", wait)
                return
            conn.settimeout(None)
            with conn:
                if not same_user(conn):
                    log.warning(
                        "refused a connection from uid %s: this worker serves uid %d only",
                        peer_uid(conn),
                        os.geteuid(),
                    )
                    continue
                stop = self._session(conn)
            if stop or self.config.linger_s == 0:
                return
            wait = self.config.linger_s

    def _session(self, conn: socket.socket) -> bool:
        """Serve one connection; True when the worker should exit."""
        hello = Hello(
            pid=os.getpid(),
            devices=self.config.binding.ids,
            platform=self.config.binding.platform,
            visible=self.runtime.visible(),
            resident=self.runtime.resident(),
            undelivered=self.undelivered,
        )
        if not _try_send(conn, hello):
            return False
        self.undelivered = []
        while True:
            try:
                payload = read_frame(conn)
            except (OSError, ProtocolError) as exc:
                log.warning("launcher connection lost: %s", exc)
                return False
            if payload is None:
                return False
            try:
                msg = parse_to_worker(payload)
            except ValidationError as exc:
                log.error("dropping malformed message: %s", exc)
                continue
            if isinstance(msg, Shutdown):
                return True
            connected = _try_send(conn, StageStarted(key=msg.key))
            log.info("stage %s started", msg.key)
            outcome, restart = self._execute(msg)
            if restart and isinstance(outcome, StageFailure):
                self.replaced_after = outcome
                self.runtime.drop_all()
                log.error("stage %s: %s; exiting to be replaced", msg.key, outcome.message)
            if not connected or not _try_send(conn, outcome):
                self.undelivered.append(outcome)
                return restart
            if restart:
                return True

    def _execute(self, msg: RunStage) -> tuple[Outcome, bool]:
        """Run a stage; (outcome, whether this process must be replaced)."""
        try:
            return self.runtime.run(msg), False
        except StageError as exc:
            failure = StageFailure(
                key=msg.key, reason=exc.reason, message=exc.message, restart=exc.restart
            )
            return failure, exc.restart
        except Exception as exc:
            if is_out_of_memory(exc) or memory_exhausted():
                return _oom(msg.key, exc), True
            log.error("stage %s crashed:\n%s", msg.key, traceback.format_exc())
            text = f"stage raised {type(exc).__name__}: {exc}"
            # A SystemError is the interpreter's own state gone wrong: start afresh.
            suspect = isinstance(exc, SystemError)
            failure = StageFailure(key=msg.key, reason="error", message=text, restart=suspect)
            return failure, suspect


EXIT_REPLACED = 3
"""Exit status of a worker that stopped because a stage failure (out of memory, for one)
left its state suspect; launchers say so when they report what the worker held as lost."""


def _oom(key: str, exc: BaseException) -> StageFailure:
    return StageFailure(
        key=key, reason="out-of-memory", message=f"out of memory: {exc}", restart=True
    )


def _try_send(conn: socket.socket, message: Hello | StageStarted | Outcome) -> bool:
    try:
        send(conn, message)
    except OSError as exc:
        log.warning("cannot reach the launcher: %s", exc)
        return False
    return True


def exit_replaced() -> NoReturn:
    """End a worker whose stage failure left it suspect, with `EXIT_REPLACED`.

    Skips interpreter teardown: in a process that just ran out of memory, finalizers
    (torch's thread pools, module cleanup) allocate and can abort or hang it, and then
    its exit status no longer tells the launcher why it ended. Logs are flushed first;
    the socket is already gone (`main`'s ``finally``).
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(EXIT_REPLACED)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow_fate.runtime.worker")
    parser.add_argument("--config", required=True, help="WorkerConfig as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    config = WorkerConfig.model_validate_json(args.config)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server = bind_owner_only(config.socket_path)
    except OSError as exc:  # NotPrivateError included: the log says why, the launcher how
        log.error("cannot serve on %s: %s", config.socket_path, exc)
        return 2
    try:
        from airflow_fate.runtime.device import DeviceRuntime  # torch: after bind

        runtime = DeviceRuntime(config.binding)
        log.info("worker %d bound to %s", os.getpid(), config.binding.label)
        worker = Worker(config, server, runtime)
        worker.serve()
    finally:
        server.close()
        if os.path.exists(config.socket_path):
            os.unlink(config.socket_path)
    if worker.replaced_after is not None:
        exit_replaced()
    return 0


if __name__ == "__main__":
    sys.exit(main())
