"""Task processes: own session, pid files, exit codes, stop (group), adoption."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from airflow_fate.launch.processes import (
    TaskProcesses,
    pid_alive,
    read_pid_file,
    same_process,
    start_ticks,
    write_pid_file,
)
from tests.unit.executor.conftest import key

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)  # execute_workload"]


def _wait_exits(procs: TaskProcesses, timeout_s: float = 20.0) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    out: list = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and not out:
        out = procs.poll()
        time.sleep(0.05)
    return out


def test_exit_codes_and_pid_files(tmp_path: Path) -> None:
    procs = TaskProcesses(tmp_path)
    procs.spawn(key("ok"), [sys.executable, "-c", "print('hi')"], os.environ)
    [ended] = _wait_exits(procs)
    assert (ended.key, ended.code) == (key("ok"), 0)
    assert not list(tmp_path.glob("*.pid"))
    assert "hi" in next(tmp_path.glob("ok-*.log")).read_text()
    procs.spawn(key("bad"), [sys.executable, "-c", "raise SystemExit(3)"], os.environ)
    [ended] = _wait_exits(procs)
    assert ended.code == 3


def test_stop_kills_the_whole_group(tmp_path: Path) -> None:
    procs = TaskProcesses(tmp_path, grace_s=2.0)
    child_pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time, pathlib;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"pathlib.Path({str(child_pid_file)!r}).write_text(str(p.pid));"
        "time.sleep(60)"
    )
    pid = procs.spawn(key("tree"), [sys.executable, "-c", script], os.environ)
    deadline = time.monotonic() + 20
    while not child_pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(child_pid_file.read_text())
    assert procs.stop(key("tree"))
    [ended] = _wait_exits(procs)
    assert ended.code is not None and ended.code < 0
    deadline = time.monotonic() + 10
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid) and not pid_alive(child)


def test_a_new_tracker_adopts_live_processes(tmp_path: Path) -> None:
    first = TaskProcesses(tmp_path)
    pid = first.spawn(key("long"), SLEEPER, os.environ)
    first.spawn(key("short"), [sys.executable, "-c", "pass  # execute_workload"], os.environ)
    time.sleep(1.0)
    first.detach_all()
    second = TaskProcesses(tmp_path, grace_s=2.0)
    assert second.adopt([key("long"), key("short"), key("never")]) == [key("long")]
    assert second.pid_of(key("long")) == pid
    assert second.stop(key("long"))
    [ended] = _wait_exits(second)
    assert ended.code is None  # not our child: the outcome comes from the database
    assert not pid_alive(pid)


def test_a_zombie_is_dead() -> None:
    """One `pid_alive` for every launcher: an exited child not yet reaped holds nothing."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    assert child.wait(timeout=5) == 0


def test_a_pid_file_identifies_its_process_by_start_time(tmp_path: Path) -> None:
    path = tmp_path / "w0.pid"
    write_pid_file(path, os.getpid(), key="k")
    pid, started = read_pid_file(path) or (0, None)
    assert (pid, started) == (os.getpid(), start_ticks(os.getpid()))
    assert same_process(pid, started)
    assert not same_process(pid, (started or 0) + 1), "a reused pid is another process"
    assert not same_process(pid, None)
    path.write_text("1234", "utf-8")  # a bare pid, as older worker pid files hold
    assert read_pid_file(path) == (1234, None)
    path.write_text("{", "utf-8")
    assert read_pid_file(path) is None
