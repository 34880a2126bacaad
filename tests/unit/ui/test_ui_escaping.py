"""Markup in DAG ids, run ids, task ids, node and model names and failure messages (which
may quote a prompt) is shown, never run.

The monitor's pages are served by their real routes and templates; only the stored rows
(`ui.source.monitor_source`) and Airflow's access checks are replaced, so what reaches the
HTML is exactly what a stored row with ``<script>`` in every string would produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_fate.executor.store import PlacementRow, ResidencyRow
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.stage import failure_report
from airflow_fate.runtime.errors import StageError
from airflow_fate.ui import api, pages
from airflow_fate.ui.auth import READ_RUN, READ_TASK_INSTANCE, VIEW_CLUSTER, readable_dags
from airflow_fate.ui.cluster_map import NodeShape
from airflow_fate.ui.source import StoredState
from tests.unit.ui.test_ui_views import T0, row

MARKUP = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ID_MARKUP = "<b onmouseover=alert(2)>"
"""For ids that travel in URL paths, where a ``/`` would split the path."""
ID_ESCAPED = "&lt;b onmouseover=alert(2)&gt;"
DAG, RUN, TASK = f"d{ID_MARKUP}", f"r{ID_MARKUP}", f"t{ID_MARKUP}"
NODE, MODEL = f"n{MARKUP}", f"m{MARKUP}"


@dataclass
class MarkupSource:
    """Stored rows whose every string carries markup."""

    rows: list[PlacementRow] = field(default_factory=list)

    def run_placements(self, dag_id: str, run_id: str) -> list[PlacementRow]:
        return [r for r in self.rows if (r.key.dag_id, r.key.run_id) == (dag_id, run_id)]

    def state(self) -> StoredState:
        residency = [ResidencyRow(NODE, 0, MODEL, "gpu", (0,), T0)]
        running = [r for r in self.rows if r.end is None]
        return StoredState(residency=residency, prefixes=[], open_placements=running)

    def shapes(self) -> list[NodeShape]:
        return [NodeShape(NODE, 2, f"g{MARKUP}", 80.0)]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    key = TaskKey(DAG, TASK, RUN, 1)
    done = row("x", key=key, node=NODE, model=MODEL, runner_up_node=NODE)
    running = row(
        "y", 5, None, key=TaskKey(DAG, f"u{ID_MARKUP}", RUN, 1), node=NODE, model=MODEL, gpus=(1,)
    )
    error = StageError("context-length", f"prompt {MARKUP} is too long")
    failed = row(
        "x",
        20,
        key=TaskKey(DAG, TASK, RUN, 2),
        node=NODE,
        model=MODEL,
        state="failed",
        measured=failure_report(error, 1),
    )
    source = MarkupSource([done, running, failed])
    monkeypatch.setattr(api, "monitor_source", lambda: source)
    monkeypatch.setattr(pages, "now", lambda: T0 + timedelta(seconds=30))
    app = FastAPI()
    app.include_router(pages.router)
    app.include_router(api.router)
    for check in (READ_RUN, READ_TASK_INSTANCE, VIEW_CLUSTER):
        app.dependency_overrides[check.dependency] = lambda: None
    app.dependency_overrides[readable_dags] = lambda: lambda dag_id: True
    return TestClient(app)


def page_paths() -> dict[str, str]:
    run = f"{quote(DAG, safe='')}/{quote(RUN, safe='')}"
    return {
        "gpus": "/ui/gpus",
        "run": f"/ui/runs/{run}",
        "task": f"/ui/runs/{run}/tasks/{quote(TASK, safe='')}",
        "task without placement": f"/ui/runs/{run}/tasks/{quote('v' + ID_MARKUP, safe='')}",
    }


@pytest.mark.parametrize("page", list(page_paths()))
def test_pages_escape_markup_from_ids_and_names(client: TestClient, page: str) -> None:
    resp = client.get(page_paths()[page])
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert "<script>alert" not in html and "<b onmouseover" not in html
    assert ID_ESCAPED in html, "the marked-up ids are shown, as text"
    if page != "task without placement":
        assert ESCAPED in html, "the marked-up node and model names are shown, as text"


def test_api_returns_names_as_data_not_html(client: TestClient) -> None:
    resp = client.get("/api/gpus")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert MODEL in resp.json()["models"]
