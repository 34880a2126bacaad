"""The monitor's per-DAG authorisation under an auth manager with per-DAG permissions.

SimpleAuthManager's roles allow all DAGs or none, so `test_ui_monitor` cannot show that
the monitor asks per DAG. Here the FAB provider's `FabAuthManager` runs a real API
server (SQLite) with two users made by the provider's own CLI:

- ``viewer`` has FAB's built-in Viewer role, which reads every DAG (global ``DAGs``);
- ``reader`` has a role that reads DAG A only: ``can_read`` on ``DAG:<A>`` plus the
  global ``DAG Runs``, ``Task Instances`` and ``Cluster Activity`` reads (and
  ``Website``, which FAB gives every custom role). For Airflow 3,
  FAB grants a DAG's runs and task instances when the caller may read the sub-entity
  (globally, or runs through ``DAG Run:<dag_id>``) *and* the DAG itself (``DAGs`` or
  ``DAG:<dag_id>``), so without ``DAG:<B>`` every B route is refused.

Authorisation needs only the DAGs to exist (serialized by ``airflow dags reserialize``)
and placement rows to show, not runs that executed: the rows are written with
`FateStore` into the metadata database and no scheduler runs, which keeps the module to
about a minute. One stage of each DAG is open (running) on its own GPU, so the GPU map
must name A's stage to both users and B's only to ``viewer``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from typing import Any

import httpx
import pytest

from airflow_fate.demo.environment import AirflowEnvironment
from airflow_fate.executor.store import FateStore, PlacementRow, ResidencyRow
from airflow_fate.launch.types import TaskKey
from tests.integration.airflow.conftest import airflow_environment

pytestmark = pytest.mark.slow

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
DAG_A, DAG_B = "fate_auth_open", "fate_auth_private"
RUN_A, RUN_B = "manual__auth_open_run", "manual__auth_private_run"
DONE_A, RUNNING_A = "embed_open", "answer_open"
DONE_B, RUNNING_B = "embed_private", "judge_private"
B_NAMES = (DAG_B, RUN_B, DONE_B, RUNNING_B)
"""What only DAG B's rows hold: the reader must never see any of it."""
NODE, MODEL = "local", "smollm2-135m-instruct"
READER_ROLE = "fate-open-dag-reader"
READER_PERMISSIONS = (
    f"DAG:{DAG_A}",
    "DAG Runs",
    "Task Instances",
    "Cluster Activity",
    "Website",  # FAB's role sync adds it to every custom role; granted here, no sync writes
)
VIEWER, READER = "viewer", "reader"
PASSWORDS = {VIEWER: "viewer-password", READER: "reader-password"}
ROLES = {VIEWER: "Viewer", READER: READER_ROLE}
CLI_TIMEOUT_S = 180.0

DAG_FILE = f'''
"""Two DAGs for the monitor's authorisation test (never run: only their ids matter)."""
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

for dag_id, tasks in (({DAG_A!r}, ({DONE_A!r}, {RUNNING_A!r})),
                      ({DAG_B!r}, ({DONE_B!r}, {RUNNING_B!r}))):
    with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        first, second = (EmptyOperator(task_id=t) for t in tasks)
        first >> second
    globals()[dag_id] = dag
'''


@dataclass(frozen=True)
class Server:
    env: AirflowEnvironment
    base: str
    tokens: dict[str, str]

    def get(self, path: str, user: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.get(f"{self.base}{path}", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert find_spec("airflow.providers.fab"), "needs the dev extra: pip install -e '.[dev]'"
    root = tmp_path_factory.mktemp("fab")
    dags = root / "dags"
    dags.mkdir()
    (dags / "auth_dags.py").write_text(DAG_FILE, encoding="utf-8")
    roles = root / "roles.json"
    roles.write_text(json.dumps(_reader_role()), encoding="utf-8")
    home = root / "home"
    with airflow_environment(
        home, dags_folder=dags, airflow={"AIRFLOW__CORE__AUTH_MANAGER": FAB}
    ) as env:
        env.migrate()
        _write_rows(FateStore(env.engine))
        env.reserialize()  # the DAGs and their FAB resources (DAG:<id>, DAG Run:<id>)
        _airflow(env, ["roles", "import", str(roles)])
        env.start_api_server()  # starts while the users are created
        _airflow(env, *[_create_user(u, p) for u, p in PASSWORDS.items()])
        env.wait_api()
        base = f"http://127.0.0.1:{env.port}"
        yield Server(env, base, {u: _login(base, u, p) for u, p in PASSWORDS.items()})


def _reader_role() -> list[dict[str, str]]:
    """``airflow roles import`` input: the role and its permissions in one command."""
    return [{"name": READER_ROLE, "resource": r, "action": "can_read"} for r in READER_PERMISSIONS]


def _create_user(user: str, password: str) -> list[str]:
    return [
        *("users", "create", "--username", user, "--password", password),
        *("--role", ROLES[user], "--email", f"{user}@example.com"),
        *("--firstname", user, "--lastname", "test"),
    ]


def _airflow(env: AirflowEnvironment, *commands: list[str]) -> None:
    """Run ``airflow`` CLI commands at once in the environment; fail with their output.

    Only commands that write disjoint rows run together (SQLite serialises the writes;
    FAB's own role sync, which every FAB process repeats, finds nothing left to add
    once ``roles import`` has run).
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=env.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in commands
    ]
    try:
        for args, proc in zip(commands, procs, strict=True):
            out, _ = proc.communicate(timeout=CLI_TIMEOUT_S)
            assert proc.returncode == 0, f"airflow {' '.join(args[:2])} failed:\n{out[-4000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _login(base: str, user: str, password: str) -> str:
    resp = httpx.post(
        f"{base}/auth/token", json={"username": user, "password": password}, timeout=60
    )
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["access_token"]
    return token


def _write_rows(store: FateStore) -> None:
    """Per DAG one finished stage and one still running, each DAG on its own GPU."""
    store.ensure_schema()
    start = datetime.now(UTC) - timedelta(minutes=5)
    for gpu, (dag_id, run_id, done, running) in enumerate(
        ((DAG_A, RUN_A, DONE_A, RUNNING_A), (DAG_B, RUN_B, DONE_B, RUNNING_B))
    ):
        store.record_launch(_placement(TaskKey(dag_id, done, run_id, 1), gpu, start))
        store.record_end(
            TaskKey(dag_id, done, run_id, 1),
            "success",
            start + timedelta(seconds=30),
            30.0,
            {"total_s": 30.0, "load_s": 3.0, "prefill_s": 1.0, "decode_s": 20.0},
        )
        store.record_launch(
            _placement(TaskKey(dag_id, running, run_id, 1), gpu, start + timedelta(seconds=31))
        )
    store.replace_residency(
        NODE, [ResidencyRow(NODE, g, MODEL, "gpu", (g,), start) for g in (0, 1)]
    )


def _placement(key: TaskKey, gpu: int, start: datetime) -> PlacementRow:
    return PlacementRow(
        key=key,
        policy="fate",
        node=NODE,
        gpus=(gpu,),
        model=MODEL,
        predicted={"wait": 0.0, "load": 3.0, "input": 0.5, "prefill": 1.0, "decode": 20.0},
        state="launched",
        pid=None,
        start=start,
        end=None,
        run_s=None,
        measured=None,
        score=24.5,
        future_terms={"residency": -3.0},
        runner_up=(2,),
        runner_up_score=27.5,
    )


def _run_paths(dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    run = f"{dag_id}/{run_id}"
    return {
        "api placements": f"/fate/api/runs/{run}/placements",
        "api decision": f"/fate/api/runs/{run}/tasks/{task_id}/decision",
        "page run": f"/fate/ui/runs/{run}",
        "page task": f"/fate/ui/runs/{run}/tasks/{task_id}",
    }


A_PATHS = _run_paths(DAG_A, RUN_A, DONE_A)
B_PATHS = _run_paths(DAG_B, RUN_B, DONE_B)
MAP_PATHS = {"api gpus": "/fate/api/gpus", "page gpus": "/fate/ui/gpus"}


def _leaked(resp: httpx.Response, path: str, names: tuple[str, ...]) -> list[str]:
    """``names`` in the body, except those the request path holds (a 401 page's login
    link echoes the URL it came from)."""
    return [s for s in names if s not in path and s in resp.text]


def test_fab_sees_the_reader_as_reading_dag_a_only(server: Server) -> None:
    """The setup itself: Airflow's own REST API lists one DAG to the reader, both to the
    viewer, so any difference below comes from the monitor asking FAB per DAG."""
    listed = {
        user: {d["dag_id"] for d in server.get("/api/v2/dags", user).json()["dags"]}
        for user in PASSWORDS
    }
    assert listed == {VIEWER: {DAG_A, DAG_B}, READER: {DAG_A}}


def test_anonymous_is_refused_everywhere(server: Server) -> None:
    for name, path in {**A_PATHS, **B_PATHS, **MAP_PATHS}.items():
        resp = server.get(path)
        assert resp.status_code == 401, name
        leaked = _leaked(resp, path, (*B_NAMES, DONE_A, RUNNING_A))
        assert not leaked, f"{name} leaked {leaked}"


def test_reader_is_refused_dag_b_and_served_dag_a(server: Server) -> None:
    for name, path in B_PATHS.items():
        resp = server.get(path, READER)
        assert resp.status_code == 403, name
        assert not _leaked(resp, path, B_NAMES), f"{name} leaked DAG B"
    for name, path in A_PATHS.items():
        assert server.get(path, READER).status_code == 200, name
    placed = server.get(A_PATHS["api placements"], READER).json()["placements"]
    assert {p["task_id"] for p in placed} == {DONE_A, RUNNING_A}
    decision = server.get(A_PATHS["api decision"], READER).json()
    assert decision["placement"]["task_id"] == DONE_A and decision["score"] == 24.5


def test_viewer_is_served_both_dags(server: Server) -> None:
    for name, path in {**A_PATHS, **B_PATHS}.items():
        assert server.get(path, VIEWER).status_code == 200, name
    placed = server.get(B_PATHS["api placements"], VIEWER).json()["placements"]
    assert {p["task_id"] for p in placed} == {DONE_B, RUNNING_B}
    assert RUNNING_B in server.get(B_PATHS["page run"], VIEWER).text


def _running(doc: dict[str, Any]) -> dict[int, dict[str, Any] | None]:
    [node] = doc["nodes"]
    return {g["index"]: g["running"] for g in node["gpus"]}


def test_gpu_map_names_dag_b_only_to_the_viewer(server: Server) -> None:
    viewer = _running(server.get("/fate/api/gpus", VIEWER).json())
    reader_resp = server.get("/fate/api/gpus", READER)
    assert reader_resp.status_code == 200
    reader = _running(reader_resp.json())
    named = {i: (r["dag_id"], r["task_id"]) if r else None for i, r in viewer.items()}
    assert named == {0: (DAG_A, RUNNING_A), 1: (DAG_B, RUNNING_B), 2: None}
    assert reader[0] is not None and (reader[0]["dag_id"], reader[0]["task_id"]) == named[0]
    hidden = reader[1]
    assert hidden is not None, "the GPU stays busy on the reader's map"
    assert (hidden["dag_id"], hidden["run_id"], hidden["task_id"], hidden["model"]) == (
        None,
        None,
        None,
        "",
    )
    assert not [s for s in B_NAMES if s in reader_resp.text]
    reader_page = server.get("/fate/ui/gpus", READER)
    viewer_page = server.get("/fate/ui/gpus", VIEWER)
    assert reader_page.status_code == viewer_page.status_code == 200
    assert RUNNING_A in reader_page.text and RUNNING_A in viewer_page.text
    assert not [s for s in B_NAMES if s in reader_page.text]
    assert DAG_B in viewer_page.text and RUNNING_B in viewer_page.text
