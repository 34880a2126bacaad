"""Device-worker sockets are owner-only: 0600 in a 0700 directory, other uids refused.

The refusal of another user is tested for real: a child process running as ``nobody``
(possible only as root, which CI is) connects to a worker whose socket was deliberately
left world-accessible, and must be cut off before the worker's `Hello`, while the
worker's own user is still served afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from airflow_fate.runtime.binding import DeviceBinding, WorkerConfig
from airflow_fate.runtime.owner_only import (
    NotPrivateError,
    bind_owner_only,
    private_directory,
    same_user,
)
from airflow_fate.runtime.protocol import Hello, Shutdown, parse_from_worker, read_frame, send
from airflow_fate.runtime.worker import Worker

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_directory_is_created_0700_and_a_loose_one_of_ours_tightened(
    tmp_path: Path,
) -> None:
    fresh = private_directory(tmp_path / "a" / "run")
    assert mode(fresh) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    assert mode(private_directory(loose)) == 0o700


def test_shared_and_foreign_directories_are_refused_not_changed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(NotPrivateError, match="shared directory"):
        private_directory(shared)
    assert mode(shared) == 0o1777
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, NOBODY, NOBODY)
        with pytest.raises(NotPrivateError, match=f"belongs to uid {NOBODY}"):
            private_directory(foreign)


def test_socket_is_0600_and_only_bound_in_a_private_directory(tmp_path: Path) -> None:
    run = private_directory(tmp_path / "run")
    server = bind_owner_only(str(run / "w0.sock"))
    try:
        assert mode(run / "w0.sock") == 0o600
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(run / "w0.sock"))
            conn, _ = server.accept()
            with conn:
                assert same_user(conn)
    finally:
        server.close()
    run.chmod(0o755)
    with pytest.raises(NotPrivateError, match="drwxr-xr-x"):
        bind_owner_only(str(run / "w1.sock"))


class _IdleRuntime:
    """What `Worker` asks of a device runtime before any stage: nothing resident."""

    def visible(self) -> list[str]:
        return ["cpu0"]

    def resident(self) -> list[str]:
        return []


def connect_as(uid: int, path: str) -> str:
    """Connect to ``path`` from a forked child running as ``uid``: what it received."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid, connect, say whether the worker spoke
        try:
            os.close(read_end)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(20)
                s.connect(path)
                os.write(write_end, b"hello" if s.recv(4) else b"refused")
        except BaseException as exc:
            os.write(write_end, f"error {exc}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        said = answer.read().decode()
    os.waitpid(pid, 0)
    return said


@as_root
def test_worker_refuses_another_user_then_serves_its_own(tmp_path: Path) -> None:
    # A socket that leaked wider than owner-only (pytest's own folders are private, so
    # it lives under /tmp): the peer check is the last lock.
    open_dir = Path(tempfile.mkdtemp(prefix="fate-open-"))
    open_dir.chmod(0o777)
    path = str(open_dir / "w.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o666)
    server.listen(4)
    binding = DeviceBinding(ids=["cpu0"], platform="cpu", memory_bytes=1 << 30, prefix_bytes=0)
    config = WorkerConfig(binding=binding, socket_path=path, linger_s=30, accept_timeout_s=30)
    worker = Worker(config, server, _IdleRuntime())  # type: ignore[arg-type]
    serving = threading.Thread(target=worker.serve, daemon=True)
    serving.start()
    try:
        assert connect_as(NOBODY, path) == "refused"
        with socket.socket(socket.AF_UNIX) as own:
            own.settimeout(20)
            own.connect(path)
            payload = read_frame(own)
            assert payload is not None
            assert isinstance(parse_from_worker(payload), Hello)
            send(own, Shutdown())
        serving.join(20)
        assert not serving.is_alive()
    finally:
        server.close()
        shutil.rmtree(open_dir, ignore_errors=True)


@as_root
def test_another_user_cannot_even_reach_an_owner_only_socket() -> None:
    run = Path(tempfile.mkdtemp(prefix="fate-private-"))  # /tmp is world-traversable
    try:
        server = bind_owner_only(str(private_directory(run / "run") / "w.sock"))
        with server:
            assert "Permission denied" in connect_as(NOBODY, server.getsockname())
    finally:
        shutil.rmtree(run, ignore_errors=True)
