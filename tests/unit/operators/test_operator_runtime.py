"""The operator side without Airflow: metadata, placement env, and a stage run through a
device worker's socket (a fake worker speaking the real protocol)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from airflow_fate.operators.device_client import run_stage
from airflow_fate.operators.metadata import MetadataError, StageMetadata, read_metadata
from airflow_fate.operators.placement import DevicePlacement
from airflow_fate.operators.stage import measured, resolve_source
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import (
    GenerateTask,
    Hello,
    ModelSource,
    StageFailure,
    StageRequest,
    StageResult,
    StageStarted,
    StageTiming,
    TokenCounts,
    parse_to_worker,
    read_frame,
    send,
)

SOURCE = ModelSource(name="m", kind="causal-lm", directory="/x", weights_bytes=1)
REQUEST = StageRequest(model=SOURCE, task=GenerateTask(prompts=["hi"]), kv_tokens=10)


def test_metadata_round_trips_through_executor_config() -> None:
    m = StageMetadata(model="m", input_tokens=50, output_tokens=8, prefix={"id": "p", "tokens": 9})
    assert read_metadata(m.as_executor_config()) == m
    assert read_metadata({"other": 1}) is None and read_metadata(None) is None
    with pytest.raises(MetadataError, match=r'executor_config\["fate"\].output_tokens'):
        read_metadata({"fate": {"model": "m", "input_tokens": 1, "output_tokens": -1}})


def test_placement_env_round_trip() -> None:
    p = DevicePlacement("n0", (1, 2), ("cpu1", "cpu2"), "/run/w1-2.sock", "/m.yaml", 30.0)
    assert DevicePlacement.from_env(p.to_env()) == p
    assert DevicePlacement.from_env({}) is None
    with pytest.raises(ValueError, match="malformed"):
        DevicePlacement.from_env({"FATE_NODE": "n0", "FATE_GPU_INDICES": "x"})


class FakeWorker:
    """Accepts one connection, greets, answers one RunStage with ``reply``."""

    def __init__(self, path: Path, fail: bool = False) -> None:
        self.path = path
        self.fail = fail
        self.seen: list[object] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            send(conn, Hello(pid=1, devices=["cpu1"], platform="cpu", visible=["cpu1"]))
            msg = parse_to_worker(read_frame(conn) or b"")
            self.seen.append(msg)
            assert msg.kind == "run"
            send(conn, StageStarted(key=msg.key))
            if self.fail:
                send(conn, StageFailure(key=msg.key, reason="context-length", message="too long"))
                return
            send(
                conn,
                StageResult(
                    key=msg.key,
                    model="m",
                    model_warm=True,
                    prefix_warm=False,
                    timing=StageTiming(load_s=0, prefill_s=0.1, decode_s=0.2, total_s=0.3),
                    tokens=TokenCounts(
                        input_tokens=5, prefill_tokens=5, reused_prefix_tokens=0, output_tokens=2
                    ),
                    texts=["ok"],
                ),
            )


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "w1.sock"


def test_a_stage_runs_in_the_device_worker(sock_path: Path) -> None:
    worker = FakeWorker(sock_path)
    placement = DevicePlacement("n0", (1,), ("cpu1",), str(sock_path), None, 10.0)
    result = run_stage("d/r/t/try1", REQUEST, placement)
    assert result.texts == ["ok"]
    [msg] = worker.seen
    assert msg.devices == ["cpu1"] and msg.key == "d/r/t/try1"  # type: ignore[attr-defined]
    summary = measured(result, placement.to_env(), 1)
    assert summary["node"] == "n0" and summary["devices"] == ["cpu1"] and summary["model_warm"]
    assert summary["try_number"] == 1


def test_a_worker_failure_is_a_stage_error(sock_path: Path) -> None:
    FakeWorker(sock_path, fail=True)
    placement = DevicePlacement("n0", (1,), ("cpu1",), str(sock_path), None, 10.0)
    with pytest.raises(StageError) as err:
        run_stage("k", REQUEST, placement)
    assert (err.value.reason, err.value.message) == ("context-length", "too long")


def test_unknown_model_names_the_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(
        "version: 1\nmodels:\n  m:\n    weights_gib: 0.1\n    kv_bytes_per_token: 0\n"
        "    prefill_tokens_per_s: 10\n    decode_tokens_per_s: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(StageError) as err:
        resolve_source("gpt-9", None, str(catalog))
    assert err.value.reason == "unknown-model"
    assert "'gpt-9' is not in the catalog (known: m)" in err.value.message
    with pytest.raises(StageError, match="no model catalog"):
        resolve_source("m", None, None)
