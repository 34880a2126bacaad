"""Executor metrics reach a real StatsD listener during a real Airflow run (SQLite).

Airflow's own StatsD client (``[metrics] statsd_on``, with InfluxDB-style tags so the
``policy`` tag is visible on the wire) sends to a UDP socket bound here. One run of
``metrics_dags/fate_metrics_probe`` on a one-GPU cluster produces every metric: a cold
and a warm LLM placement, a prefix reuse, an encoder load that evicts the LLM, two
stages queued at once; a CP-SAT time limit of a microsecond makes every decision a
solver fallback. The totals must match ``fate_placement`` and ``metrics.json``.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from airflow_fate.demo.environment import AirflowEnvironment
from airflow_fate.demo.inputs import CLUSTER
from airflow_fate.executor import stats as st
from tests.integration.airflow.conftest import (
    RUN_TIMEOUT_S,
    airflow_environment,
    assert_every_task_placed,
    start,
)

pytestmark = pytest.mark.slow

DAG_ID = "fate_metrics_probe"
DAGS = Path(__file__).resolve().parent / "metrics_dags"
PREFIX = "airflow"
KINDS = {
    st.DECISION_TIME: "ms",
    st.PLACEMENTS_WARM: "c",
    st.PLACEMENTS_COLD: "c",
    st.PLACEMENTS_PREFIX_REUSE: "c",
    st.MODEL_LOADS: "c",
    st.MODEL_LOAD_TIME: "ms",
    st.EVICTIONS: "c",
    st.SOLVER_FALLBACKS: "c",
    st.QUEUED_STAGES: "g",
    st.GPUS_BUSY: "g",
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One StatsD line: ``name[,tag=value...]:value|type``."""

    name: str
    tags: dict[str, str]
    value: float
    kind: str


def parse(line: str) -> Sample:
    head, _, rest = line.rpartition(":")
    value, _, kind = rest.partition("|")
    name, *tag_parts = head.split(",")
    tags = dict(part.split("=", 1) for part in tag_parts)
    return Sample(name, tags, float(value), kind.split("|")[0])


class StatsdListener:
    """A UDP socket on 127.0.0.1 (a free port) collecting every line sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            with self._lock:
                self._lines.extend(data.decode(errors="replace").splitlines())

    def samples(self, prefix: str) -> list[Sample]:
        with self._lock:
            lines = list(self._lines)
        return [parse(line) for line in lines if line.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def one_gpu_inputs(directory: Path) -> dict[str, str]:
    """``[fate]`` options for the demo's figures with one virtual GPU and one device."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster = yaml.safe_load(CLUSTER)
    cluster["nodes"][0]["gpu_count"] = 1
    (directory / "cluster.yaml").write_text(yaml.safe_dump(cluster), encoding="utf-8")
    inventory = {"version": 1, "devices": [{"platform": "cpu", "id": "cpu0", "threads": 1}]}
    (directory / "inventory.yaml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return {
        "cluster": str(directory / "cluster.yaml"),
        "inventory": str(directory / "inventory.yaml"),
        "planner_time_limit_s": "0.000001",
    }


def totals(samples: list[Sample]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def test_every_executor_metric_reaches_statsd(tmp_path: Path) -> None:
    assert importlib.util.find_spec("statsd"), (
        "Airflow's StatsD backend needs the statsd package (pip install 'statsd>=4,<5')"
    )
    listener = StatsdListener()
    metrics = {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": PREFIX,
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    }
    fate = one_gpu_inputs(tmp_path / "inputs")
    try:
        with airflow_environment(
            tmp_path / "home", dags_folder=DAGS, fate=fate, airflow=metrics
        ) as env:
            start(env)
            runs = env.trigger([DAG_ID])
            [final] = env.wait_runs(runs, RUN_TIMEOUT_S)
            assert final.state == "success", env.task_states(runs)
            assert env.wait_placements_closed([DAG_ID], 60.0)
            placements = env.placements([DAG_ID])
            assert_every_task_placed(env, runs, placements)
            loads = sum(1 for p in placements if not (p.measured or {}).get("model_warm"))
            fate_samples, summary = _wait_for_loads(listener, env, loads)
    finally:
        listener.close()

    by_name = {s.name.removeprefix(f"{PREFIX}."): s for s in fate_samples}
    missing = sorted(set(st.METRIC_NAMES) - set(by_name))
    assert not missing, f"never received: {missing}"
    assert {s.tags.get("policy") for s in fate_samples} == {"fate"}
    assert {name: by_name[name].kind for name in st.METRIC_NAMES} == KINDS

    got = {k.removeprefix(f"{PREFIX}."): v for k, v in totals(fate_samples).items()}
    stages = [p for p in placements if p.gpus]
    assert len(stages) == 4
    # two LLM placements find the LLM warm, the first LLM stage and the encoder load
    assert (got[st.PLACEMENTS_COLD], got[st.PLACEMENTS_WARM]) == (2, 2)
    assert got[st.PLACEMENTS_PREFIX_REUSE] == 1, "revise reuses draft's system prompt"
    assert got[st.MODEL_LOADS] == loads == 2
    measured_load_s = sum((p.measured or {}).get("load_s", 0.0) for p in stages)
    assert got[st.MODEL_LOAD_TIME] == pytest.approx(measured_load_s * 1000, rel=1e-3)
    assert got[st.EVICTIONS] == 1, "the encoder evicts the LLM"
    decisions = [s for s in fate_samples if s.name.endswith(st.DECISION_TIME)]
    assert got[st.SOLVER_FALLBACKS] == len(decisions) >= 1, "every CP-SAT call timed out"
    gauges = {n: [s.value for s in fate_samples if s.name.endswith(n)] for n in st.METRIC_NAMES}
    assert max(gauges[st.QUEUED_STAGES]) >= 1, "draft and review were queued together"
    assert max(gauges[st.GPUS_BUSY]) == 1 and min(gauges[st.GPUS_BUSY]) == 0

    # metrics.json is written from the same counters
    assert summary["placements_cold"] == got[st.PLACEMENTS_COLD]
    assert summary["placements_warm"] == got[st.PLACEMENTS_WARM]
    assert summary["model_loads"] == got[st.MODEL_LOADS]
    assert summary["evictions"] == got[st.EVICTIONS]
    assert summary["fallbacks"] == got[st.SOLVER_FALLBACKS]
    assert summary["plan_calls"] == len(decisions)


def _wait_for_loads(
    listener: StatsdListener, env: AirflowEnvironment, loads: int, timeout_s: float = 30.0
) -> tuple[list[Sample], dict[str, object]]:
    """The ``fate.`` samples and ``metrics.json``, once both count the last stage's report.

    The executor closes a placement in the database just before it counts the stage's
    device report, sends it and rewrites ``metrics.json``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        samples = listener.samples(f"{PREFIX}.fate.")
        summary = env.executor_metrics()
        sent = sum(s.value for s in samples if s.name.endswith(st.MODEL_LOADS))
        if (sent >= loads and summary.get("model_loads") == loads) or time.monotonic() > deadline:
            return samples, summary
        time.sleep(0.2)
