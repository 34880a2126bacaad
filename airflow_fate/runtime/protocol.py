"""The typed messages between a launcher and a device worker, and their framing.

One stream socket per worker, one frame per message: a 4-byte big-endian length, then the
message as UTF-8 JSON. Messages are pydantic models with a ``kind`` discriminator, so
either side rejects anything malformed with a message naming the field. The launcher
sends `RunStage` and `Shutdown`; the worker answers `Hello` once per connection, then
`StageStarted` and one `StageResult` or `StageFailure` per stage. See
``docs/adr/0002-worker-protocol.md`` for why it looks like this.

Nothing here imports torch: launchers import this module.
"""

from __future__ import annotations

import socket
import struct
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")

ModelKind = Literal["causal-lm", "embedding", "cross-encoder"]
"""What a model can do: generate text, embed text, or score (query, document) pairs."""

FailureReason = Literal[
    "unknown-model",
    "model-file",
    "context-length",
    "out-of-memory",
    "device-mismatch",
    "bad-request",
    "error",
    "worker-died",
    "worker-broken",
    "timeout",
    "cancelled",
]
"""Why a stage failed; launchers add the last four for failures seen from outside."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------ what to run


class ModelSource(_Message):
    """Where a catalog model's files are and how to load them (resolved by the launcher).

    ``weights_bytes`` and ``kv_bytes_per_token`` are the catalog's figures; the worker
    uses them to make room before loading, exactly as `ClusterState` does, and records
    the measured size once the model is loaded.
    """

    name: str = Field(min_length=1)
    kind: ModelKind
    directory: str = Field(min_length=1)
    gguf_file: str | None = None
    weights_bytes: int = Field(ge=0)
    kv_bytes_per_token: int = Field(default=0, ge=0)


class GenerateTask(_Message):
    """Chat generation for a batch of prompts that share one system prompt.

    ``system`` is the shared prefix; when ``prefix_id`` is set its KV is kept on the
    worker under ``(model, prefix_id)`` and reused by later stages. ``temperature`` 0 is
    greedy decoding. ``ignore_eos`` keeps decoding to ``max_new_tokens`` (benchmarks use
    it so a stage produces the token count its workload declares).
    """

    type: Literal["generate"] = "generate"
    prompts: list[str] = Field(min_length=1)
    system: str | None = None
    prefix_id: str | None = None
    max_new_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    ignore_eos: bool = False


class EmbedTask(_Message):
    """Sentence embeddings (mean-pooled, L2-normalised) of each text."""

    type: Literal["embed"] = "embed"
    texts: list[str] = Field(min_length=1)


class RerankTask(_Message):
    """Relevance scores of each document for the query (cosine or cross-encoder logit)."""

    type: Literal["rerank"] = "rerank"
    query: str
    documents: list[str] = Field(min_length=1)


Task = Annotated[GenerateTask | EmbedTask | RerankTask, Field(discriminator="type")]


class StageRequest(_Message):
    """One stage's work: the model, the task, and the tokens its KV will need."""

    model: ModelSource
    task: Task
    kv_tokens: int = Field(default=0, ge=0)


# ------------------------------------------------------------------ launcher -> worker


class RunStage(_Message):
    """Run one stage. ``devices`` are the device ids the launcher gave the stage."""

    kind: Literal["run"] = "run"
    key: str = Field(min_length=1)
    devices: list[str] = Field(min_length=1)
    request: StageRequest


class Shutdown(_Message):
    """Exit after the current message; resident models are dropped."""

    kind: Literal["shutdown"] = "shutdown"


ToWorker = Annotated[RunStage | Shutdown, Field(discriminator="kind")]


# ------------------------------------------------------------------ worker -> launcher


class StageTiming(_Message):
    """Measured seconds: model load (0 when warm), prefill, decode, and the whole stage."""

    load_s: float = Field(ge=0)
    prefill_s: float = Field(ge=0)
    decode_s: float = Field(ge=0)
    total_s: float = Field(ge=0)


class TokenCounts(_Message):
    """Tokens of the stage: prompt tokens, those computed, those reused, those generated."""

    input_tokens: int = Field(ge=0)
    prefill_tokens: int = Field(ge=0)
    reused_prefix_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class StageResult(_Message):
    """A finished stage: its outputs and what it cost, measured."""

    kind: Literal["result"] = "result"
    key: str
    model: str
    model_warm: bool
    prefix_warm: bool
    evicted: list[str] = Field(default_factory=list)
    timing: StageTiming
    tokens: TokenCounts
    texts: list[str] | None = None
    embeddings: list[list[float]] | None = None
    scores: list[float] | None = None


class StageFailure(_Message):
    """A stage that could not run. ``restart`` asks the launcher for a fresh worker."""

    kind: Literal["failure"] = "failure"
    key: str
    reason: FailureReason
    message: str
    restart: bool = False


class StageStarted(_Message):
    """The worker accepted the stage and began (loading or computing)."""

    kind: Literal["started"] = "started"
    key: str


class Hello(_Message):
    """Sent first on every connection: who the worker is and what it holds.

    ``visible`` is what the worker itself sees (CUDA device UUIDs, or its virtual CPU
    ids), so a launcher can log a binding that went wrong. ``undelivered`` carries
    outcomes of stages that finished while no launcher was connected (adoption).
    """

    kind: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    pid: int
    devices: list[str]
    platform: Literal["cpu", "cuda"]
    visible: list[str]
    resident: list[str] = Field(default_factory=list)
    undelivered: list[StageResult | StageFailure] = Field(default_factory=list)


FromWorker = Annotated[
    Hello | StageStarted | StageResult | StageFailure, Field(discriminator="kind")
]

_TO_WORKER: TypeAdapter[RunStage | Shutdown] = TypeAdapter(ToWorker)
_FROM_WORKER: TypeAdapter[Hello | StageStarted | StageResult | StageFailure] = TypeAdapter(
    FromWorker
)


# ---------------------------------------------------------------------------- framing


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame or message."""


def send(sock: socket.socket, message: BaseModel) -> None:
    """Write one message as a frame (blocking until written)."""
    data = message.model_dump_json().encode("utf-8")
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    sock.sendall(_HEADER.pack(len(data)) + data)


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks: list[bytes] = []
    left = n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            if chunks:
                raise ProtocolError(f"connection closed inside a frame ({n - left}/{n} bytes)")
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> bytes | None:
    """One frame's payload, or None when the peer closed the connection cleanly."""
    header = _read_exact(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    payload = _read_exact(sock, size)
    if payload is None:
        raise ProtocolError("connection closed after a frame header")
    return payload


def parse_to_worker(payload: bytes) -> RunStage | Shutdown:
    """Decode a launcher -> worker message (raises `pydantic.ValidationError`)."""
    return _TO_WORKER.validate_json(payload)


def parse_from_worker(payload: bytes) -> Hello | StageStarted | StageResult | StageFailure:
    """Decode a worker -> launcher message (raises `pydantic.ValidationError`)."""
    return _FROM_WORKER.validate_json(payload)
