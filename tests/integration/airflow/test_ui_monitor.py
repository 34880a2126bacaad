"""The UI monitor plugin on a real API server, over the rows of a real DAG run.

An API server (SimpleAuthManager with a real user and password, not all-admins) serves
the SQLite database of the session's demo run, in which FateExecutor ran the RAG
example DAG; every test in the module reads that DAG's first run. The API and the pages
must answer an authenticated caller (a token from ``POST /auth/token``, as a bearer
header or as the UI's ``_token`` cookie) with the stored rows, and refuse an anonymous
one without leaking data. The browser test logs in through Airflow's login page in
headless Chromium, opens the GPU page and the dag-run tab, checks the Gantt has one bar
per task and saves screenshots (to a temporary folder, or to ``$FATE_SCREENSHOT_DIR``
when set, e.g. ``docs/screenshots``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from airflow_fate.executor.store import FateStore, PlacementRow
from airflow_fate.planner.fate.scoring import TERMS
from airflow_fate.planner.registry import policy_names
from tests.integration.airflow.conftest import DemoRun, leftover_processes

pytestmark = pytest.mark.slow

DAG_ID = "fate_rag_judge"
USER, PASSWORD = "monitor-admin", "monitor-password"
STORED_ONLY = ("smollm2", "minilm", "embed_docs", "rerank", "rag-judge-v1", "data-task-id")
"""Strings only the stored rows hold (the request URL names the DAG, run and task)."""
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Monitor:
    env: AirflowEnvironment
    base: str
    run: DagRunState
    placements: list[PlacementRow]
    token: str

    @property
    def tasks(self) -> set[str]:
        return {k[2] for k in self.env.task_states([self.run])}

    def run_path(self) -> str:
        return f"{quote(self.run.dag_id, safe='')}/{quote(self.run.run_id, safe='')}"


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory, demo_run: DemoRun) -> Iterator[Monitor]:
    """An API server with real users over the demo's database (no scheduler: read only).

    The demo (the session's ``demo_run``) already ran the RAG DAG under FateExecutor;
    serving its rows saves running the DAG again. Its passwords file lives outside the
    demo's home, and the demo's own files are left as they were.
    """
    root = tmp_path_factory.mktemp("ui")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}), encoding="utf-8")
    auth = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    env = AirflowEnvironment(demo_run.home, airflow=auth)
    try:
        env.start_api_server()
        env.wait_api()
        run = next(r for r in env.run_states(_demo_runs(demo_run)) if r.dag_id == DAG_ID)
        assert run.state == "success", env.task_states([run])
        placements = [p for p in env.placements([DAG_ID]) if p.key.run_id == run.run_id]
        base = f"http://127.0.0.1:{env.port}"
        yield Monitor(env, base, run, placements, _login(base))
    finally:
        env.stop()
        left = leftover_processes(f"--port {env.port}")
        assert not left, f"processes left behind: {left}"


def _demo_runs(demo: DemoRun) -> list[DagRunState]:
    return [DagRunState(r["dag_id"], r["run_id"], None) for r in demo.runs]


def _login(base: str) -> str:
    resp = httpx.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["access_token"]
    return token


def _get(
    m: Monitor, path: str, *, token: str | None = None, cookie: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    cookies = {"_token": cookie} if cookie else {}
    return httpx.get(f"{m.base}{path}", headers=headers, cookies=cookies, timeout=30)


def _paths(m: Monitor) -> dict[str, str]:
    run = m.run_path()
    return {
        "api gpus": "/fate/api/gpus",
        "api placements": f"/fate/api/runs/{run}/placements",
        "api decision": f"/fate/api/runs/{run}/tasks/judge/decision",
        "api replay": f"/fate/api/runs/{run}/replay",
        "page gpus": "/fate/ui/gpus",
        "page run": f"/fate/ui/runs/{run}",
        "page task": f"/fate/ui/runs/{run}/tasks/judge?map_index={{MAP_INDEX}}",
        "page what-if": f"/fate/ui/runs/{run}/what-if",
    }


def test_plugin_is_registered_with_its_views(monitor: Monitor) -> None:
    resp = _get(monitor, "/api/v2/plugins", token=monitor.token)
    assert resp.status_code == 200
    [fate] = [p for p in resp.json()["plugins"] if p["name"] == "fate"]
    assert [a["url_prefix"] for a in fate["fastapi_apps"]] == ["/fate"]
    views = {v["destination"]: v for v in fate["external_views"]}
    assert set(views) == {"nav", "dag_run", "task_instance"}
    assert views["nav"]["name"] == "GPU placement"
    assert "{DAG_ID}" in views["dag_run"]["href"] and "{RUN_ID}" in views["dag_run"]["href"]
    assert "{TASK_ID}" in views["task_instance"]["href"]


def test_anonymous_and_bad_tokens_are_refused_without_data(monitor: Monitor) -> None:
    for name, path in _paths(monitor).items():
        anonymous = _get(monitor, path)
        assert anonymous.status_code == 401, name
        forged = _get(monitor, path, token=monitor.token[:-4] + "AAAA")
        assert forged.status_code == 403, name
        for body in (anonymous.text, forged.text):
            leaked = [s for s in STORED_ONLY if s in body]
            assert not leaked, f"{name} leaked {leaked}"
        if name.startswith("page"):
            assert "Sign in" in anonymous.text and "/auth/login" in anonymous.text
        else:
            assert anonymous.json() == {"detail": "Not authenticated"}


def test_bearer_token_and_ui_cookie_are_accepted(monitor: Monitor) -> None:
    for name, path in _paths(monitor).items():
        assert _get(monitor, path, token=monitor.token).status_code == 200, name
        assert _get(monitor, path, cookie=monitor.token).status_code == 200, name


def test_placements_api_returns_the_runs_rows(monitor: Monitor) -> None:
    resp = _get(monitor, f"/fate/api/runs/{monitor.run_path()}/placements", token=monitor.token)
    doc = resp.json()
    assert (doc["dag_id"], doc["run_id"]) == (DAG_ID, monitor.run.run_id)
    got = {p["task_id"]: p for p in doc["placements"]}
    assert set(got) == monitor.tasks
    stored = {p.key.task_id: p for p in monitor.placements}
    for task_id, p in got.items():
        row = stored[task_id]
        assert (p["node"], p["gpus"], p["model"], p["state"]) == (
            row.node,
            list(row.gpus),
            row.model,
            "success",
        )
    gpu_stages = [p for p in got.values() if p["gpus"]]
    assert {p["task_id"] for p in gpu_stages} == {"embed_docs", "rerank", "answer", "judge"}
    for p in gpu_stages:
        assert p["predicted_run_s"] == pytest.approx(
            sum(p["predicted"][k] for k in ("load", "input", "prefill", "decode"))
        )
        assert p["measured_stage_s"] == p["measured"]["total_s"] > 0
        assert isinstance(p["model_warm"], bool)
    assert got["load_corpus"]["gpus"] == [] and got["load_corpus"]["predicted_run_s"] is None
    other = _get(monitor, f"/fate/api/runs/{DAG_ID}/no-such-run/placements", token=monitor.token)
    assert other.json()["placements"] == []


def test_gpu_map_shows_cluster_residency_and_prefix_kv(monitor: Monitor) -> None:
    doc = _get(monitor, "/fate/api/gpus", token=monitor.token).json()
    assert doc["source"] == "cluster"
    [node] = doc["nodes"]
    assert node["name"] == "local" and [g["index"] for g in node["gpus"]] == [0, 1, 2]
    resident = {(g["index"], r["model"]) for g in node["gpus"] for r in g["resident"]}
    store = FateStore(monitor.env.engine)
    assert resident == {(r.gpu, r.model) for r in store.residency() if r.tier == "gpu"}
    answer = next(p for p in monitor.placements if p.key.task_id == "answer")
    assert (answer.gpus[0], answer.model) in resident, "the last LLM stage's model stays"
    kv = {(g["index"], e["prefix_id"]) for g in node["gpus"] for e in g["prefix_kv"]}
    judge = next(p for p in monitor.placements if p.key.task_id == "judge")
    assert (judge.gpus[0], "rag-judge-v1") in kv, "the judge's system prompt KV is kept"
    assert all(g["running"] is None for g in node["gpus"]), "the run is over"
    assert set(doc["models"]) >= {answer.model}


def test_decision_explains_the_judge_placement(monitor: Monitor) -> None:
    path = f"/fate/api/runs/{monitor.run_path()}/tasks/judge/decision"
    d = _get(monitor, path, token=monitor.token).json()
    judge = next(p for p in monitor.placements if p.key.task_id == "judge")
    assert d["placement"]["gpus"] == list(judge.gpus)
    assert [line["term"] for line in d["breakdown"]] == [
        "wait",
        "load",
        "input",
        "prefill",
        "decode",
    ]
    assert {t["term"] for t in d["future_terms"]} == set(TERMS)
    assert d["score"] == judge.score and d["runner_up"] == (
        list(judge.runner_up) if judge.runner_up else None
    )
    if judge.runner_up is not None:  # FATE keeps the runner-up's own breakdown
        assert d["runner_up_node"] == judge.runner_up_node == judge.node
        assert judge.runner_up_predicted is not None
        runner_up = {line["term"]: line["runner_up_s"] for line in d["breakdown"]}
        assert runner_up == judge.runner_up_predicted
    measured = {line["term"]: line["measured_s"] for line in d["breakdown"]}
    assert measured["load"] == judge.measured["load_s"]  # type: ignore[index]
    assert measured["wait"] is None
    assert d["reasons"] and "fate policy placed this try on local GPU" in d["reasons"][0]
    missing = _get(monitor, path.replace("/judge/", "/nobody/"), token=monitor.token)
    assert missing.status_code == 404


def test_replay_api_has_every_policy_against_the_measured_run(monitor: Monitor) -> None:
    doc = _get(monitor, f"/fate/api/runs/{monitor.run_path()}/replay", token=monitor.token).json()
    assert [r["policy"] for r in doc["rows"]] == policy_names()
    assert doc["ran"] == ["fate"] and doc["model_error"]["policy"] == "fate"
    chosen = [(r["dag_id"], r["run_id"]) for r in doc["runs"] if r["chosen"]]
    assert chosen == [(DAG_ID, monitor.run.run_id)]
    assert len(doc["runs"]) > 1, "the demo's other runs shared the GPUs and are replayed too"
    stages = [p for p in monitor.placements if p.gpus]
    assert doc["measured"]["stages"] == len(stages)
    assert doc["measured"]["loads"] == sum(1 for p in stages if p.measured["load_s"] > 0)  # type: ignore[index]
    missing = _get(monitor, f"/fate/api/runs/{DAG_ID}/no-such-run/replay", token=monitor.token)
    assert missing.status_code == 404
    page = _get(monitor, f"/fate/ui/runs/{monitor.run_path()}/what-if", token=monitor.token).text
    rows = re.findall(r'<tr[^>]*data-policy="([^"]+)"', page)
    assert rows == ["measured", *policy_names()]
    assert "cost model error on this run" in page


def test_run_page_draws_one_bar_per_task(monitor: Monitor) -> None:
    html = _get(monitor, f"/fate/ui/runs/{monitor.run_path()}", token=monitor.token).text
    bars = re.findall(r'class="bar state-(\w+) primary[^"]*"\s+data-task-id="([^"]+)"', html)
    assert sorted(t for _, t in bars) == sorted(monitor.tasks)
    assert {s for s, _ in bars} == {"success"}
    assert "data-refresh" not in html, "a finished run does not refresh itself"
    assert 'id="what-if" data-load=' in html, "a finished run loads its what-if panel"


@pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CI") != "true",
    reason="needs Debian chromium (scripts/setup.sh installs it; in CI its absence fails)",
)
def test_browser_shows_gpu_map_and_run_gantt(monitor: Monitor, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("FATE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.set_default_timeout(60_000)
            page.goto(f"{monitor.base}/auth/login")
            page.get_by_label("Username").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
            assert any(c["name"] == "_token" for c in page.context.cookies())

            page.goto(f"{monitor.base}/plugin/fate-gpus")
            gpus = page.frame_locator("iframe[title='GPU placement']")
            gpus.locator(".gpu").first.wait_for()
            assert gpus.locator(".gpu").count() == 3
            assert gpus.locator(".chip.resident").count() >= 1
            page.screenshot(path=str(shots / "gpu-map.png"))
            stamp = gpus.locator(".stamp")
            before = stamp.inner_text()
            expect(stamp).not_to_have_text(before, timeout=20_000)  # refreshed in place

            dag, run = (quote(x, safe="") for x in (monitor.run.dag_id, monitor.run.run_id))
            run_ui = f"{monitor.base}/dags/{dag}/runs/{run}"
            page.goto(f"{run_ui}/plugin/fate-run")
            gantt = page.frame_locator("iframe[title='GPU placement']")
            gantt.locator(".gantt").wait_for()
            bars = gantt.locator(".bar.primary")
            assert bars.count() == len(monitor.tasks)
            ids = {bars.nth(i).get_attribute("data-task-id") for i in range(bars.count())}
            assert ids == monitor.tasks
            page.screenshot(path=str(shots / "run-gantt.png"))
            panel = gantt.locator("table.what-if")
            panel.wait_for()
            assert panel.locator("tr[data-policy]").count() == 1 + len(policy_names())
            # The panel's heading at the top: the screenshot shows what the table is.
            gantt.locator("#what-if h2").evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(shots / "what-if.png"))

            page.goto(f"{run_ui}/tasks/judge/plugin/fate-why")
            why = page.frame_locator("iframe[title='Why this GPU']")
            why.locator("table.breakdown").wait_for()
            assert why.locator("table.breakdown tr[data-term]").count() == 5
            page.screenshot(path=str(shots / "why-this-gpu.png"))
        finally:
            browser.close()
    shots_taken = ("gpu-map.png", "run-gantt.png", "what-if.png")
    assert all((shots / n).stat().st_size > 10_000 for n in shots_taken)
