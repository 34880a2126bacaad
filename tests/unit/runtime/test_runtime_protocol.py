"""Framing and validation of the worker protocol (no torch)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from airflow_fate.runtime import protocol as p


def _source() -> p.ModelSource:
    return p.ModelSource(name="m", kind="causal-lm", directory="/x", weights_bytes=10)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            p.RunStage(
                key="wf/s",
                devices=["cpu0"],
                request=p.StageRequest(model=_source(), task=p.GenerateTask(prompts=["hi"])),
            ),
            id="run-generate",
        ),
        pytest.param(
            p.RunStage(
                key="wf/e",
                devices=["GPU-1", "GPU-2"],
                request=p.StageRequest(
                    model=_source(), task=p.RerankTask(query="q", documents=["d"])
                ),
            ),
            id="run-rerank",
        ),
        pytest.param(p.Shutdown(), id="shutdown"),
    ],
)
def test_launcher_messages_round_trip(
    pair: tuple[socket.socket, socket.socket], message: p.RunStage | p.Shutdown
) -> None:
    a, b = pair
    p.send(a, message)
    payload = p.read_frame(b)
    assert payload is not None
    assert p.parse_to_worker(payload) == message


def test_worker_messages_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    result = p.StageResult(
        key="k",
        model="m",
        model_warm=True,
        prefix_warm=False,
        timing=p.StageTiming(load_s=0, prefill_s=0.1, decode_s=0.2, total_s=0.3),
        tokens=p.TokenCounts(
            input_tokens=5, prefill_tokens=5, reused_prefix_tokens=0, output_tokens=2
        ),
        texts=["ok"],
    )
    hello = p.Hello(pid=1, devices=["cpu0"], platform="cpu", visible=["cpu0"], undelivered=[result])
    for message in (hello, p.StageStarted(key="k"), result):
        p.send(a, message)
    got = [p.parse_from_worker(p.read_frame(b) or b"") for _ in range(3)]
    assert got == [hello, p.StageStarted(key="k"), result]


def test_clean_close_reads_none_and_torn_frame_raises(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", 10) + b"abc")
    a.close()
    with pytest.raises(p.ProtocolError, match="closed"):
        p.read_frame(b)
    c, d = socket.socketpair()
    c.close()
    assert p.read_frame(d) is None
    d.close()


def test_oversized_frame_is_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", p.MAX_FRAME_BYTES + 1))
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.read_frame(b)


def test_unknown_fields_and_kinds_are_rejected() -> None:
    with pytest.raises(ValidationError):
        p.parse_to_worker(b'{"kind": "run", "key": "k", "devices": ["c"], "extra": 1}')
    with pytest.raises(ValidationError):
        p.parse_from_worker(b'{"kind": "bogus"}')
    with pytest.raises(ValidationError):
        p.GenerateTask(prompts=[])
