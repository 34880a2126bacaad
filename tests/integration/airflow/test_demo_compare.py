"""``airflow-fate demo --compare`` end to end: LocalExecutor and FateExecutor, real models.

The smallest example DAG, one batch: both executors run every task successfully, the
printed table and the JSON have one row each with positive times, every LocalExecutor
stage loads its model in its own task process, and no process survives the command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.airflow.conftest import leftover_processes

pytestmark = [pytest.mark.slow, pytest.mark.campaign]
"""Two Airflows in turn (minutes); CI checks the comparison's table and JSON in
``tests/unit/cli/test_demo_compare_table.py``."""

COMPARE_TIMEOUT_S = 900
DAG = "fate_multi_agent_review"
"""Four LLM stages, no CPU tasks: the cheapest example DAG."""


def test_compare_runs_both_executors(tmp_path: Path) -> None:
    # A short home: device-worker Unix socket paths must stay under ~100 bytes.
    home = Path(tempfile.mkdtemp(prefix="fc-", dir="/tmp"))
    out = tmp_path / "compare.json"
    command = [
        *(sys.executable, "-m", "airflow_fate", "demo", "--compare"),
        *("--dags", DAG, "--batches", "1", "--timeout", "400"),
        *("--home", str(home), "--compare-json", str(out)),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMPARE_TIMEOUT_S, check=False
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert not leftover_processes(str(home.resolve()))
        lines = done.stdout.splitlines()
        assert any(line.startswith("LocalExecutor ") for line in lines), done.stdout
        assert any(line.startswith("FateExecutor (fate) ") for line in lines), done.stdout
        assert str(out) in done.stdout.replace("\n", "")

        doc = json.loads(out.read_text())
        assert doc["dags"] == [DAG] and doc["batches"] == 1
        local, fate = doc["rows"]
        assert local["executor"].endswith("LocalExecutor") and local["policy"] is None
        assert fate["executor"].endswith("FateExecutor") and fate["policy"] == "fate"
        for row in (local, fate):
            assert row["ok"], row
            assert row["tasks"] == row["tasks_succeeded"] == 4, row
            assert [r["state"] for r in row["runs"]] == ["success"]
            assert row["total_s"] > 0 and len(row["batch_s"]) == 1 and row["batch_s"][0] > 0
            assert row["stages"] == 4, "every stage pushed its measured breakdown"
        assert local["model_loads"] == 4, "each LocalExecutor task loads its model itself"
        assert fate["model_loads"] < local["model_loads"], "FATE's device workers stay warm"
        assert local["speedup"] == 1.0 and fate["speedup"] > 0
    finally:
        shutil.rmtree(home, ignore_errors=True)
