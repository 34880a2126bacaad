"""A placed stage without a GPU: a device worker that speaks the real protocol and
answers from the request, a model catalog, the placement variables, a task instance."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_fate.operators.placement import DevicePlacement
from airflow_fate.runtime.protocol import (
    EmbedTask,
    GenerateTask,
    Hello,
    RerankTask,
    RunStage,
    StageResult,
    StageStarted,
    StageTiming,
    TokenCounts,
    parse_to_worker,
    read_frame,
    send,
)

MODEL = "tiny-lm"


class EchoWorker:
    """Serves stage requests on a Unix socket until closed; records each `RunStage`.

    Answers are derived from the request so a test can tell what reached the device:
    a generation echoes ``system|prompt``, an embedding is ``[len(text)]``, a rerank
    scores each document by its length.
    """

    def __init__(self, path: Path) -> None:
        self.seen: list[RunStage] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                send(conn, Hello(pid=1, devices=["cpu1"], platform="cpu", visible=["cpu1"]))
                msg = parse_to_worker(read_frame(conn) or b"")
                assert isinstance(msg, RunStage)
                self.seen.append(msg)
                send(conn, StageStarted(key=msg.key))
                send(conn, self._answer(msg))

    @staticmethod
    def _answer(msg: RunStage) -> StageResult:
        task = msg.request.task
        outputs: dict[str, Any] = {}
        if isinstance(task, GenerateTask):
            outputs["texts"] = [f"{task.system}|{p}" for p in task.prompts]
        elif isinstance(task, EmbedTask):
            outputs["embeddings"] = [[float(len(t))] for t in task.texts]
        elif isinstance(task, RerankTask):
            outputs["scores"] = [float(len(d)) for d in task.documents]
        return StageResult(
            key=msg.key,
            model=MODEL,
            model_warm=True,
            prefix_warm=False,
            timing=StageTiming(load_s=0.0, prefill_s=0.1, decode_s=0.2, total_s=0.3),
            tokens=TokenCounts(
                input_tokens=5, prefill_tokens=5, reused_prefix_tokens=0, output_tokens=2
            ),
            **outputs,
        )

    def close(self) -> None:
        self.server.close()


@dataclass
class RecordingTaskInstance:
    """The task instance attributes a stage operator reads, and the XComs it pushes."""

    task_id: str
    dag_id: str = "d"
    run_id: str = "r"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoWorker]:
    """An `EchoWorker` the stage is placed on, with a catalog that resolves `MODEL`."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    catalog = tmp_path / "models.yaml"
    catalog.write_text(
        f"version: 1\nmodels:\n  {MODEL}:\n    path: {model_dir}\n    weights_gib: 0.1\n"
        "    kv_bytes_per_token: 0\n    prefill_tokens_per_s: 10\n    decode_tokens_per_s: 1\n",
        encoding="utf-8",
    )
    sock = tmp_path / "w.sock"
    echo = EchoWorker(sock)
    placement = DevicePlacement("n0", (0,), ("cpu1",), str(sock), str(catalog), 10.0)
    for name, value in placement.to_env().items():
        monkeypatch.setenv(name, value)
    yield echo
    echo.close()
