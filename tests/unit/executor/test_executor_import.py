"""The executor is cheap to import and to build (the API server builds it to read logs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
import airflow_fate.executor
lazy = "airflow" not in sys.modules
from airflow_fate.executor import FateExecutor
executor = FateExecutor()
heavy = sorted(m for m in ("torch", "ortools", "kubernetes", "transformers") if m in sys.modules)
print(json.dumps({"lazy": lazy, "heavy": heavy, "name": type(executor).__name__}))
"""


def test_constructing_the_executor_imports_nothing_heavy(tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc == {"lazy": True, "heavy": [], "name": "FateExecutor"}
