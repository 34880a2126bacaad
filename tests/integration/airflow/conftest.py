"""Real Airflow (API server + scheduler with FateExecutor) on SQLite or PostgreSQL.

Each test gets its own AIRFLOW_HOME under ``tmp_path``; every process is stopped and the
home removed afterwards, and the test fails if any process started under it survives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from airflow_fate.executor.store import PlacementRow

RUN_TIMEOUT_S = 420.0
DEMO_TIMEOUT_S = 900


@dataclass(frozen=True)
class DemoRun:
    """One finished ``airflow-fate demo`` run whose Airflow home is kept for reading.

    Attributes:
        home: the kept AIRFLOW_HOME (its SQLite database holds the runs and placements).
        doc: the ``--json`` result the demo wrote.
        stdout: what the demo printed.
        json_path: where ``doc`` was written.
    """

    home: Path
    doc: dict[str, Any]
    stdout: str
    json_path: Path

    @property
    def runs(self) -> list[dict[str, str]]:
        """``dag_id`` and ``run_id`` of every DAG run the demo triggered."""
        return [{"dag_id": r["dag_id"], "run_id": r["run_id"]} for r in self.doc["dag_runs"]]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The README's main job, run once per test session (it takes minutes on CPU).

    The demo test checks what it printed and stored, the replay test replays its
    database and the UI test serves it through an API server of its own: all read the
    same runs, and none changes them.
    """
    root = tmp_path_factory.mktemp("demo")
    home, out = root / "home", root / "demo.json"
    command = [sys.executable, "-m", "airflow_fate", "demo", "--json", str(out)]
    command += ["--home", str(home), "--keep", "--timeout", "600"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert not leftover_processes(str(home.resolve()))
        yield DemoRun(home, json.loads(out.read_text()), done.stdout, out)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def live_processes() -> Iterator[tuple[str, list[str]]]:
    """``(pid, argv)`` of every live (not zombie) process this user can read."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            yield proc.name, [a.decode(errors="replace") for a in argv if a]


def leftover_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (a home directory)."""
    found = []
    for pid, argv in live_processes():
        cmd = " ".join(argv)
        if marker in cmd:
            found.append(f"{pid}: {cmd[:200]}")
    return found


@contextmanager
def airflow_environment(home: Path, **kw: Any) -> Iterator[AirflowEnvironment]:
    """An environment whose processes and files are gone after the block.

    With ``FATE_KEEP_AIRFLOW_HOME=1`` the files stay (logs, database, worker logs), for
    looking into a run that failed; the processes are stopped either way.
    """
    env = AirflowEnvironment(home, **kw)
    try:
        yield env
    finally:
        env.stop()
        left = leftover_processes(str(env.home))
        if os.environ.get("FATE_KEEP_AIRFLOW_HOME") != "1":
            shutil.rmtree(env.home, ignore_errors=True)
        assert not left, f"processes left behind: {left}"


def start(env: AirflowEnvironment) -> None:
    """Migrate, start the API server and the scheduler, serialise the DAGs."""
    env.migrate()
    env.start_api_server()
    env.start_scheduler()
    env.reserialize()
    env.wait_api()


def assert_every_task_placed(
    env: AirflowEnvironment, runs: list[DagRunState], placements: list[PlacementRow]
) -> None:
    tasks = env.task_states(runs)
    placed = {(p.key.dag_id, p.key.run_id, p.key.task_id) for p in placements}
    missing = sorted(set(tasks) - placed)
    assert not missing, f"tasks without a fate_placement row: {missing}"
    for p in placements:
        assert p.end is not None and p.run_s is not None, f"open placement {p.key}"


def busy_until(p: PlacementRow) -> Any:
    """When the executor saw the try's process end (the planner's view of the GPU)."""
    return p.start + timedelta(seconds=p.run_s or 0.0)


def check_children_follow_parents(
    placements: list[PlacementRow], upstream: Mapping[str, Mapping[str, list[str]]]
) -> int:
    """A child stage never loads its model cold while a same-model parent's GPU still
    held that model and was free.

    A parent's GPUs "still held the model and were free" when no try of another model
    used them between the parent's end and the child's end (it may have evicted the
    model: three one-model GPUs here) and no other try used them while the child ran
    (siblings placed in one decision epoch compete for their parent's GPU). The child
    passes by running on such a parent's GPUs or on another GPU where its model was
    warm: when two free GPUs hold the model the planner's choice between them is a tie
    (one node, so outputs are local either way). A join such as ``revise`` after two
    reviews on different GPUs can follow only one parent, so any one counts. Returns
    how many children the rule applied to.
    """
    stages = [p for p in placements if p.gpus]
    by_task = {(p.key.dag_id, p.key.run_id, p.key.task_id): p for p in stages}
    checked = 0
    for child in stages:
        free_parents = []
        for parent_id in upstream[child.key.dag_id][child.key.task_id]:
            parent = by_task.get((child.key.dag_id, child.key.run_id, parent_id))
            if parent is None or parent.model != child.model or parent.node != child.node:
                continue
            shared = [
                o
                for o in stages
                if o is not child
                and o is not parent
                and o.node == parent.node
                and set(o.gpus) & set(parent.gpus)
            ]
            taken = any(o.start < busy_until(child) and child.start < busy_until(o) for o in shared)
            evicting = any(
                o.model != child.model
                and busy_until(parent) < busy_until(o)
                and o.start < busy_until(child)
                for o in shared
            )
            if not taken and not evicting and busy_until(parent) <= child.start:
                free_parents.append(parent)
        if not free_parents:
            continue
        checked += 1
        followed = child.gpus in {p.gpus for p in free_parents}
        warm = bool((child.measured or {}).get("model_warm"))
        assert followed or warm, (
            f"{child.key.task_id} ({child.model}) loaded its model cold on {child.gpus} "
            f"although its parents {[(p.key.task_id, p.gpus) for p in free_parents]} "
            f"still held it and were free at {child.start}"
        )
    return checked
