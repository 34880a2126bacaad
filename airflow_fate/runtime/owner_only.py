"""Owner-only Unix sockets: a device worker serves the user that started it, nobody else.

A device worker runs whatever stage a connection sends it on the GPUs it holds, with the
models and prompts of every DAG that used them. Three locks keep other local users out:

1. its socket lives in a directory only its owner may enter (mode 0700, `private_directory`);
2. the socket itself is created 0600 (`bind_owner_only` binds under umask 0177, so there is
   no moment at which it is wider);
3. each connection's peer credentials (``SO_PEERCRED``) are checked on accept
   (`same_user`), so a socket that leaked wider (a directory loosened by hand, a bind
   mount) still refuses another uid.

Airflow task processes connect to the workers: they must run as the scheduler's user
(Airflow's default; ``run_as_user`` impersonation is refused by lock 3).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotPrivateError(PermissionError):
    """A directory meant for device-worker sockets others could enter; says which and why."""


def private_directory(path: Path) -> Path:
    """``path`` as a directory only this user may enter, created or tightened to 0700.

    A missing directory is created 0700. An existing one of this user with group or other
    bits is tightened (an older install created ``<AIRFLOW_HOME>/fate`` 0755), unless it is
    a shared directory (sticky bit, as ``/tmp``): those are refused rather than changed.

    Raises:
        NotPrivateError: the directory belongs to another user, or is a shared one.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    uid = os.geteuid()
    if st.st_uid != uid:
        raise NotPrivateError(
            f"{path}: belongs to uid {st.st_uid}, not to this user (uid {uid}); device-worker "
            "sockets need a directory of their own user"
        )
    if st.st_mode & 0o077:
        if st.st_mode & stat.S_ISVTX:
            raise NotPrivateError(
                f"{path}: a shared directory (mode {stat.filemode(st.st_mode)}); give the "
                "device workers a directory of their own (run_dir)"
            )
        os.chmod(path, 0o700)
    return path


def check_private(directory: Path) -> None:
    """Refuse a socket directory others may enter (the worker's own check, lock 1).

    Raises:
        NotPrivateError: naming the directory, its owner or mode.
    """
    st = directory.stat()
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise NotPrivateError(
            f"{directory}: device-worker sockets need a directory only their user may enter "
            f"(owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}; want uid "
            f"{os.geteuid()}, drwx------)"
        )


def bind_owner_only(path: str, backlog: int = 4) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600, in a private directory.

    Raises:
        NotPrivateError: the socket's directory is not private (`check_private`).
    """
    check_private(Path(path).parent)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    server.listen(backlog)
    return server


def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket; None where the platform
    cannot say (no ``SO_PEERCRED``: locks 1 and 2 still hold)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return int(uid)


def same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this process's user (or the platform cannot tell)."""
    uid = peer_uid(conn)
    return uid is None or uid == os.geteuid()
