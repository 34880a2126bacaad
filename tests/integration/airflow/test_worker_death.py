"""A device worker that dies or runs out of memory mid-stage, under real Airflow (SQLite).

Two faults, injected into the worker process once its log says a stage started:

- ``killed``: SIGKILL, as the kernel's OOM killer or an operator would;
- ``out-of-memory``: its address space capped at what it maps now (``prlimit``), so
  the stage's next allocation fails inside torch, as a device that ran out of memory.

Only that try fails: its task log and its ``fate_placement`` row say why; Airflow's
retry runs on a fresh worker and succeeds; the scheduler reports the lost worker so the
planner stops counting on the models it held.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_fate.demo.environment import AirflowEnvironment
from airflow_fate.launch.processes import read_pid_file
from tests.integration.airflow.conftest import RUN_TIMEOUT_S, airflow_environment, start

pytestmark = pytest.mark.slow

DAG_ID = "fate_worker_death"
STAGE_STARTED = re.compile(r"stage \S+ started")
DAG_FILE = """
from datetime import timedelta

from airflow.sdk import DAG

from airflow_fate.operators import LLMStageOperator

with DAG(
    "fate_worker_death",
    schedule=None,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as dag:
    LLMStageOperator(
        task_id="write",
        model="smollm2-135m-instruct",
        # ~1,000 prompt tokens: prefill needs fresh memory, which a capped worker lacks
        prompt="Summarise these notes. " + "The scheduler kept the model warm. " * 100,
        max_new_tokens=96,
    )
"""


@dataclass(frozen=True)
class Fault:
    """What is done to the worker, once its log shows ``after``, and what the try's
    records must then say."""

    failure: str
    worker_end: str
    after: re.Pattern[str]

    def inject(self, pid: int) -> None:
        if self.failure == "worker-died":
            os.kill(pid, signal.SIGKILL)
            return
        mapped = _vm_size_bytes(pid)
        _, hard = resource.prlimit(pid, resource.RLIMIT_AS)
        resource.prlimit(pid, resource.RLIMIT_AS, (mapped, hard))


KILLED = Fault("worker-died", "was killed by SIGKILL", STAGE_STARTED)
# Capped once the model is in: the generation's allocations fail. (Capped mid-load, a
# native reader can fail as a SystemError instead; the worker is replaced then too.)
OUT_OF_MEMORY = Fault(
    "out-of-memory", "exited to be replaced", re.compile(STAGE_STARTED.pattern + r"[\s\S]*loaded ")
)


@pytest.mark.parametrize("fault", [KILLED, OUT_OF_MEMORY], ids=["killed", "out-of-memory"])
def test_worker_fault_fails_one_try_and_the_retry_succeeds(tmp_path: Path, fault: Fault) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "worker_death.py").write_text(DAG_FILE, encoding="utf-8")
    with airflow_environment(tmp_path / "home", dags_folder=dags) as env:
        start(env)
        [run] = env.trigger([DAG_ID])
        hit = _fault_once_a_stage_runs(env, fault)
        [final] = env.wait_runs([run], RUN_TIMEOUT_S)
        assert final.state == "success", env.task_states([run])
        assert env.wait_placements_closed([DAG_ID], 60.0)

        tries = sorted(env.placements([DAG_ID]), key=lambda p: p.key.try_number)
        assert [p.key.try_number for p in tries] == [1, 2]
        assert tries[0].state in ("up_for_retry", "failed") and tries[1].state == "success"
        assert (tries[0].measured or {}).get("failure") == fault.failure, tries[0].measured
        assert (tries[1].measured or {}).get("total_s"), "the retry ran on a device"

        attempt_1 = _task_log(env, 1)
        assert f"failed [{fault.failure}]" in attempt_1, attempt_1[-3000:]
        scheduler = (env.logs / "scheduler.log").read_text(errors="replace")
        lost = rf"lost their worker: device worker \S+ \(pid {hit}\) {fault.worker_end}"
        reported = [line for line in scheduler.splitlines() if "lost their worker" in line]
        assert re.search(lost, scheduler), (reported, _worker_log_tail(env, hit))


def _fault_once_a_stage_runs(
    env: AirflowEnvironment, fault: Fault, timeout_s: float = 300.0
) -> int:
    """Inject ``fault`` into the first device worker whose log shows ``fault.after``; its pid."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for log in sorted(env.run_dir.glob("w*.log")):
            if not fault.after.search(log.read_text(errors="replace")):
                continue
            recorded = read_pid_file(log.with_suffix(".pid"))
            assert recorded is not None, f"no pid file beside {log}"
            fault.inject(recorded[0])
            return recorded[0]
        time.sleep(0.2)
    raise AssertionError("no device worker started a stage in time")


def _worker_log_tail(env: AirflowEnvironment, pid: int) -> str:
    """The end of the log of the worker that had pid ``pid``: how it ended, when a
    report is missing."""
    for log in env.run_dir.glob("w*.log"):
        text = log.read_text(errors="replace")
        if f"worker {pid} bound" in text:
            return text[-3000:]
    return f"no worker log names pid {pid}"


def _vm_size_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    [kib] = re.findall(r"^VmSize:\s+(\d+) kB", status, re.MULTILINE)
    return int(kib) * 1024


def _task_log(env: AirflowEnvironment, attempt: int) -> str:
    [log] = list((env.home / "logs").rglob(f"*task_id=write*/attempt={attempt}.log"))
    return log.read_text(errors="replace")
