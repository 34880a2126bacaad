"""`AirflowEnvironment`: one throwaway Airflow installation and the processes it runs.

Configuration is entirely ``AIRFLOW__*`` environment variables (nothing global is
touched), so several environments can coexist (tests run one per database). Every
service starts in a session of its own; `stop` sends SIGTERM to each group, waits, then
SIGKILLs, and finally sweeps the device workers and task processes whose pid files the
executor left under ``<home>/fate``. Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from airflow_fate.demo.inputs import InputFiles, write_inputs
from airflow_fate.errors import InputError
from airflow_fate.executor.store import FateStore, PlacementRow
from airflow_fate.launch.processes import pid_alive, stop_group

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
"""The example DAGs: ``dags/`` at the top of the repository checkout, where Airflow
projects and ``docker-compose.yml`` keep them. They are not part of the installed package,
so they are found from an editable install (``pip install -e .``, the documented setup)."""
TERMINAL_RUN_STATES = {"success", "failed"}


def check_dags_folder(folder: Path) -> Path:
    """``folder`` resolved, if it is a directory holding DAG files.

    Checked before anything starts, so a demo run from an installed wheel (which has no
    ``dags/``) stops with what to do instead of an Airflow that finds no DAG to trigger.

    Raises:
        InputError: naming the folder, the usual cause and the ``--dags-folder`` option.
    """
    hint = (
        "the example DAGs live in dags/ of the repository checkout (install it with "
        "pip install -e . from the checkout), or pass --dags-folder DIR"
    )
    if not folder.is_dir():
        raise InputError(str(folder), "", f"no such DAGs folder; {hint}")
    if not any(folder.glob("*.py")):
        raise InputError(str(folder), "", f"no DAG files (*.py) in this folder; {hint}")
    return folder.resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class DagRunState:
    dag_id: str
    run_id: str
    state: str | None


@dataclass
class _Service:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class AirflowEnvironment:
    """An Airflow home with FateExecutor; see the module docstring.

    Args:
        home: the AIRFLOW_HOME (created).
        db_url: metadata database (default: SQLite in ``home``).
        dags_folder: DAGs to serve (default: the example DAGs, `DAGS_FOLDER`).
        policy: the planner policy.
        fate: extra ``[fate]`` options (name -> value).
        airflow: extra ``AIRFLOW__SECTION__KEY`` variables.
        extra_env: other variables every process gets, for what is configured outside
            Airflow (``KUBECONFIG`` for ``[fate] launcher = kubernetes``).
    """

    home: Path
    db_url: str | None = None
    dags_folder: Path = DAGS_FOLDER
    policy: str = "fate"
    fate: Mapping[str, str] = field(default_factory=dict)
    airflow: Mapping[str, str] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.dags_folder = check_dags_folder(self.dags_folder)
        self.url = self.db_url or f"sqlite:///{self.home / 'airflow.db'}"
        self.inputs: InputFiles = write_inputs(self.home / "fate-inputs")
        self.run_dir = self.home / "fate"
        self.logs = self.home / "service-logs"
        self.env = self._environment()
        self._services: dict[str, _Service] = {}
        self._engine: Engine | None = None

    # -- configuration ---------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        api = f"http://127.0.0.1:{self.port}"
        values = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": "airflow_fate.executor.FateExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__FATE__POLICY": self.policy,
            "AIRFLOW__FATE__CLUSTER": str(self.inputs.cluster),
            "AIRFLOW__FATE__MODELS": str(self.inputs.models),
            "AIRFLOW__FATE__INVENTORY": str(self.inputs.inventory),
            "AIRFLOW__FATE__RUN_DIR": str(self.run_dir),
            "AIRFLOW__FATE__PLANNER_TIME_LIMIT_S": "0.5",
            "AIRFLOW__FATE__CPU_SLOTS": "2",
            "AIRFLOW__FATE__DETACH_ON_END": "False",
            "AIRFLOW__FATE__END_WAIT_S": "5",
            "PYTHONUNBUFFERED": "1",
        }
        values.update({f"AIRFLOW__FATE__{k.upper()}": v for k, v in self.fate.items()})
        values.update(self.airflow)
        values.update(self.extra_env)
        env.update(values)
        return env

    # -- setting up ------------------------------------------------------------------

    def migrate(self, timeout_s: float = 300.0) -> None:
        """Create the home and migrate the metadata database."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._run(["db", "migrate"], "migrate", timeout_s)

    def reserialize(self, timeout_s: float = 300.0) -> None:
        """Parse the DAG folder once and store the serialized DAGs (no DAG processor)."""
        self._run(["dags", "reserialize"], "reserialize", timeout_s)

    def _run(self, args: Sequence[str], name: str, timeout_s: float) -> None:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                stop_group(proc.pid, 5.0, proc)
                raise RuntimeError(f"airflow {' '.join(args)} timed out; see {log}") from None
        if code != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"airflow {' '.join(args)} failed ({code}); {log}:\n{tail}")

    def start_service(self, name: str, args: Sequence[str]) -> None:
        """Start ``airflow <args>`` in its own process group, output in service-logs."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._services[name] = _Service(name, popen, log)

    def start_api_server(self) -> None:
        self.start_service("api-server", ["api-server", "--port", str(self.port)])

    def start_scheduler(self) -> None:
        self.start_service("scheduler", ["scheduler"])

    def wait_api(self, timeout_s: float = 180.0) -> None:
        """Wait until the API server answers its health endpoint."""
        url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive("api-server")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"API server not up within {timeout_s:g} s; see {self.logs}")

    def check_alive(self, name: str) -> None:
        service = self._services.get(name)
        if service is not None and service.popen.poll() is not None:
            tail = service.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"{name} exited with code {service.popen.returncode}; {service.log}:\n{tail}"
            )

    def is_running(self, name: str) -> bool:
        service = self._services.get(name)
        return service is not None and service.popen.poll() is None

    # -- running DAGs ----------------------------------------------------------------

    def _ops(self, command: str, dag_ids: Sequence[str], timeout_s: float) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "airflow_fate.demo.airflow_ops", command, *dag_ids],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow_ops {command} {list(dag_ids)} failed:\n{done.stderr[-3000:]}"
            )
        return json.loads(done.stdout.strip().splitlines()[-1])

    def trigger(self, dag_ids: Sequence[str], timeout_s: float = 120.0) -> list[DagRunState]:
        """Trigger one run of each DAG; their (dag_id, run_id)."""
        runs = self._ops("trigger", dag_ids, timeout_s)
        return [DagRunState(r["dag_id"], r["run_id"], "queued") for r in runs]

    def upstream(self, dag_ids: Sequence[str], timeout_s: float = 120.0) -> dict[str, Any]:
        """``{dag_id: {task_id: [upstream task ids]}}`` from the serialized DAGs."""
        doc: dict[str, Any] = self._ops("upstream", dag_ids, timeout_s)
        return doc

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            args = {"timeout": 30} if self.url.startswith("sqlite") else {}
            self._engine = create_engine(self.url, connect_args=args)
        return self._engine

    def run_states(self, runs: Sequence[DagRunState]) -> list[DagRunState]:
        out: list[DagRunState] = []
        with self.engine.connect() as conn:
            for r in runs:
                state = conn.execute(
                    text("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r"),
                    {"d": r.dag_id, "r": r.run_id},
                ).scalar_one_or_none()
                out.append(DagRunState(r.dag_id, r.run_id, state))
        return out

    def task_states(self, runs: Sequence[DagRunState]) -> dict[tuple[str, str, str], str | None]:
        """``(dag_id, run_id, task_id) -> state`` of every task of these runs."""
        out: dict[tuple[str, str, str], str | None] = {}
        with self.engine.connect() as conn:
            for r in runs:
                rows = conn.execute(
                    text(
                        "SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r"
                    ),
                    {"d": r.dag_id, "r": r.run_id},
                )
                for task_id, state in rows:
                    out[(r.dag_id, r.run_id, task_id)] = state
        return out

    def placements(self, dag_ids: Sequence[str] | None = None) -> list[PlacementRow]:
        return FateStore(self.engine).placements(dag_ids)

    def wait_runs(
        self,
        runs: Sequence[DagRunState],
        timeout_s: float,
        progress: Callable[[list[DagRunState]], None] | None = None,
        poll_s: float = 2.0,
    ) -> list[DagRunState]:
        """Wait until every run is finished (or the timeout); their last states."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive("scheduler")
            states = self.run_states(runs)
            if progress is not None:
                progress(states)
            if all(s.state in TERMINAL_RUN_STATES for s in states):
                return states
            if time.monotonic() >= deadline:
                return states
            time.sleep(poll_s)

    def wait_placements_closed(self, dag_ids: Sequence[str], timeout_s: float) -> bool:
        """Wait until the executor recorded the end of every placement of these DAGs.

        A run is done in the database slightly before the executor sees its last task's
        process exit; waiting here keeps measured times in the result.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.end is not None for p in self.placements(dag_ids)):
                return True
            time.sleep(0.5)
        return False

    def executor_metrics(self) -> dict[str, object]:
        """The executor's overhead counters (``<run_dir>/metrics.json``), if written."""
        path = self.run_dir / "metrics.json"
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    # -- stopping --------------------------------------------------------------------

    def stop_service(self, name: str, grace_s: float = 30.0) -> None:
        """SIGTERM the service's process group, wait ``grace_s``, then SIGKILL it."""
        service = self._services.pop(name, None)
        if service is not None:
            stop_group(service.popen.pid, grace_s, service.popen)

    def kill_service(self, name: str) -> None:
        """SIGKILL the service's process group at once, as a crash or the OOM killer would.

        Task processes and device workers run in sessions of their own, so they survive
        it, as they survive a scheduler process that dies.
        """
        service = self._services.pop(name, None)
        if service is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.popen.pid, signal.SIGKILL)
            service.popen.wait()

    def sweep(self) -> int:
        """Stop device workers and task processes left under the run dir; how many."""
        stopped = 0
        if not self.run_dir.exists():
            return 0
        for pid_file in self.run_dir.rglob("*.pid"):
            pid = _pid_from(pid_file)
            if pid is not None and pid_alive(pid):
                stop_group(pid, 5.0)
                stopped += 1
            pid_file.unlink(missing_ok=True)
        return stopped

    def stop(self) -> None:
        """Stop the scheduler (its executor stops its tasks), the API server, leftovers."""
        for name in ("scheduler", *[n for n in self._services if n != "scheduler"]):
            self.stop_service(name)
        self.sweep()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> AirflowEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_from(path: Path) -> int | None:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(doc, int):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("pid"), int):
        pid: int = doc["pid"]
        return pid
    return None
