"""`DeviceRuntime`: one device set's resident models, prefix KV, and stage execution.

The worker process owns one; tests drive it in-process. It checks that the stage was
given the devices this runtime is bound to (and, on GPUs, that torch sees exactly those),
makes the model resident (evicting least recently used models to fit the memory budget,
the same rule `ClusterState` models), runs the task and reports measured times.
"""

from __future__ import annotations

import gc
import logging
import os
import time

import torch

from airflow_fate.runtime.binding import DeviceBinding
from airflow_fate.runtime.encode import EncodeOutcome, embed, rerank
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.generate import PrefixEntry, PrefixKey, generate
from airflow_fate.runtime.loaders import LoadedModel, import_model_code, load_model
from airflow_fate.runtime.lru import BudgetLru
from airflow_fate.runtime.protocol import (
    GenerateTask,
    RunStage,
    StageRequest,
    StageResult,
    StageTiming,
    TokenCounts,
)

GIB = 1024**3


log = logging.getLogger(__name__)


class DeviceRuntime:
    """Executes stages on one device set, keeping models and prefix KV warm between them."""

    def __init__(self, binding: DeviceBinding) -> None:
        self.binding = binding
        self.models: BudgetLru[str, LoadedModel] = BudgetLru(binding.memory_bytes)
        self.prefixes: BudgetLru[PrefixKey, PrefixEntry] = BudgetLru(binding.prefix_bytes)
        if binding.threads is not None:
            torch.set_num_threads(binding.threads)
        import_model_code()

    def visible(self) -> list[str]:
        """The devices this process can actually use (GPU UUIDs, or the virtual ids)."""
        if self.binding.platform == "cpu":
            return list(self.binding.ids)
        return [_gpu_id(i) for i in range(torch.cuda.device_count())]

    def verify(self, expected: list[str]) -> None:
        """Fail unless the stage's devices are this runtime's and torch sees exactly them.

        Raises:
            StageError: ``device-mismatch`` naming what was expected and what is seen.
        """
        ids = self.binding.ids
        if expected != ids:
            raise StageError(
                "device-mismatch",
                f"stage was given devices {expected} but this worker is bound to {ids}",
            )
        if self.binding.platform == "cpu":
            return
        seen = self.visible()
        exported = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        if len(seen) != len(ids):
            raise StageError(
                "device-mismatch",
                f"stage was given {len(ids)} GPU(s) {ids} (CUDA_VISIBLE_DEVICES={exported}) "
                f"but torch sees {len(seen)}: {seen}",
            )
        if _uuids(ids) and _uuids(seen) and _uuids(ids) != _uuids(seen):
            raise StageError(
                "device-mismatch",
                f"stage was given GPUs {ids} (CUDA_VISIBLE_DEVICES={exported}) "
                f"but torch sees {seen}",
            )

    def resident(self) -> list[str]:
        return self.models.keys()

    def run(self, msg: RunStage) -> StageResult:
        """Run one stage; raises `StageError` for failures the user can act on."""
        start = time.perf_counter()
        self.verify(msg.devices)
        lm, load_s, evicted = self._ensure(msg.request)
        task = msg.request.task
        if isinstance(task, GenerateTask):
            if lm.source.kind != "causal-lm":
                raise StageError(
                    "bad-request",
                    f"model {lm.source.name!r} is a {lm.source.kind}; it cannot generate",
                )
            gen = generate(lm, task, self.prefixes)
            return StageResult(
                key=msg.key,
                model=lm.source.name,
                model_warm=load_s == 0.0,
                prefix_warm=gen.prefix_warm,
                evicted=evicted,
                timing=StageTiming(
                    load_s=load_s,
                    prefill_s=gen.prefill_s,
                    decode_s=gen.decode_s,
                    total_s=time.perf_counter() - start,
                ),
                tokens=TokenCounts(
                    input_tokens=gen.input_tokens,
                    prefill_tokens=gen.prefill_tokens,
                    reused_prefix_tokens=gen.reused_tokens,
                    output_tokens=gen.output_tokens,
                ),
                texts=gen.texts,
            )
        enc: EncodeOutcome = (
            embed(lm, task.texts)
            if task.type == "embed"
            else rerank(lm, task.query, task.documents)
        )
        return StageResult(
            key=msg.key,
            model=lm.source.name,
            model_warm=load_s == 0.0,
            prefix_warm=False,
            evicted=evicted,
            timing=StageTiming(
                load_s=load_s,
                prefill_s=enc.seconds,
                decode_s=0.0,
                total_s=time.perf_counter() - start,
            ),
            tokens=TokenCounts(
                input_tokens=enc.tokens,
                prefill_tokens=enc.tokens,
                reused_prefix_tokens=0,
                output_tokens=0,
            ),
            embeddings=enc.embeddings,
            scores=enc.scores,
        )

    def _ensure(self, request: StageRequest) -> tuple[LoadedModel, float, list[str]]:
        """The request's model, resident; with load seconds (0 if warm) and evictions."""
        source = request.model
        lm = self.models.get(source.name)
        if lm is not None and lm.source == source:
            return lm, 0.0, []
        if lm is not None:
            self.models.pop(source.name)  # same name, different files: reload
        need = source.weights_bytes + source.kv_bytes_per_token * request.kv_tokens
        if need > self.binding.memory_bytes:
            raise StageError(
                "out-of-memory",
                f"model {source.name!r} needs {need / GIB:.3f} GiB for weights and KV but "
                f"device {self.binding.label} has a budget of "
                f"{self.binding.memory_bytes / GIB:.3f} GiB",
            )
        evicted = self.models.make_room(need)
        if evicted:
            self._release()
        t0 = time.perf_counter()
        lm = load_model(source, self.binding)
        load_s = time.perf_counter() - t0
        log.info("loaded %s in %.1f s (%.3f GiB)", source.name, load_s, lm.nbytes / GIB)
        more = self.models.put(source.name, lm, lm.nbytes)
        if more:
            self._release()
        return lm, max(load_s, 1e-9), evicted + more

    def drop_all(self) -> None:
        """Forget every model and prefix: a worker about to be replaced (out of memory, for
        one) frees what it holds so that it can still report why."""
        self.models.clear()
        self.prefixes.clear()
        self._release()

    def _release(self) -> None:
        """Return evicted models' memory now, not at some later collection."""
        gc.collect()
        if self.binding.platform == "cuda":
            torch.cuda.empty_cache()


def _uuids(ids: list[str]) -> list[str] | None:
    """Normalised GPU UUIDs, or None unless every id is one (``GPU-`` + 5 groups)."""
    out = [i.lower().removeprefix("gpu-") for i in ids]
    return out if all(u.count("-") == 4 for u in out) else None


def _gpu_id(index: int) -> str:
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else f"cuda:{index}"
