"""Merge measured rates into a ``models.yaml``, show the change, write it checked.

Where a figure goes follows the catalog's own rule (`airflow_fate.domain.models`): the
top-level ``prefill_tokens_per_s``/``decode_tokens_per_s``/``load_gbps`` are the figures
on a GPU type of ``relative_speed`` 1.0, and ``per_gpu_type.<type>`` holds those of any other
type (or of a reference type that already has an override, which would win). Every other
field is kept. The file is rewritten as plain YAML (comments are not kept), so the diff
is taken between the two documents rendered the same way: it shows only what changed.
Nothing is written unless the result loads with the project's own catalog loader.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airflow_fate.atomic_file import write_atomically
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_models
from airflow_fate.runtime.registry import PACKAGE_SCHEME

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RateUpdate:
    """Measured rates of one model on one GPU type (``decode``/``load_gbps`` None: leave
    it)."""

    model: str
    gpu_type: str
    prefill: float
    decode: float | None
    load_gbps: float | None = None


def read_document(path: Path) -> Document:
    """The raw mapping of a ``models.yaml`` that `load_models` has already accepted."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path} was checked by load_models"
    return doc


def merge_base(models_doc: Document, models_path: Path, out_path: Path) -> Document:
    """The document the figures go into: ``out_path``'s if it exists, else a copy.

    Entries copied from ``models_path`` to a file in another directory get their
    relative ``path`` rewritten, so they still name the same files.
    """
    if out_path.exists() and out_path.resolve() != models_path.resolve():
        base = read_document(out_path)
        base.setdefault("models", {})
        return base
    base = copy.deepcopy(models_doc)
    for entry in base.get("models", {}).values():
        _rebase(entry, models_path.resolve().parent, out_path.resolve().parent)
    return base


def apply_updates(
    base: Document,
    models_doc: Document,
    models_path: Path,
    out_path: Path,
    updates: Iterable[RateUpdate],
    reference_types: set[str],
) -> Document:
    """A copy of ``base`` with every update applied (models missing from it copied in)."""
    new = copy.deepcopy(base)
    models: dict[str, Any] = new.setdefault("models", {})
    for u in updates:
        if u.model not in models:
            entry = copy.deepcopy(models_doc["models"][u.model])
            _rebase(entry, models_path.resolve().parent, out_path.resolve().parent)
            models[u.model] = entry
        entry = models[u.model]
        overrides: dict[str, Any] = entry.get("per_gpu_type") or {}
        if u.gpu_type in reference_types:
            _set_rates(entry, u)
        if u.gpu_type not in reference_types or u.gpu_type in overrides:
            row = dict(overrides.get(u.gpu_type) or {})
            row.setdefault("decode_tokens_per_s", entry["decode_tokens_per_s"])
            _set_rates(row, u)
            overrides[u.gpu_type] = row
            entry["per_gpu_type"] = overrides
    return new


def render(doc: Document) -> str:
    """The YAML text written for ``doc`` (key order kept)."""
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def unified_diff(old: Document, new: Document, old_name: str, new_name: str) -> str:
    """A unified diff of the two documents as they render; empty when they are equal."""
    lines = difflib.unified_diff(
        render(old).splitlines(keepends=True),
        render(new).splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    return "".join(lines)


def write_checked(doc: Document, path: Path, cluster: Cluster) -> None:
    """Write ``doc`` to ``path`` atomically, after `load_models` accepts it there.

    The check runs on a temporary file in the same directory, so relative model paths
    resolve as they will, and a rejected document leaves ``path`` untouched.

    Raises:
        InputError: from the loader, naming the field it rejects.
    """
    write_atomically(path, render(doc), lambda tmp: load_models(tmp, cluster))


def significant(value: float, digits: int = 3) -> float:
    """``value`` to ``digits`` significant figures: measurements are not more precise.

    Whole numbers come back as ``int`` so the file reads ``6890``, not ``6890.0``.
    """
    rounded = float(f"{value:.{digits}g}")
    return int(rounded) if rounded.is_integer() else rounded


def _set_rates(row: dict[str, Any], u: RateUpdate) -> None:
    row["prefill_tokens_per_s"] = significant(u.prefill)
    if u.decode is not None:
        row["decode_tokens_per_s"] = significant(u.decode)
    if u.load_gbps is not None:
        row["load_gbps"] = significant(u.load_gbps)


def _rebase(entry: dict[str, Any], old_dir: Path, new_dir: Path) -> None:
    where = entry.get("path")
    if not isinstance(where, str) or old_dir == new_dir:
        return
    if where.startswith(PACKAGE_SCHEME) or Path(where).expanduser().is_absolute():
        return
    entry["path"] = os.path.relpath(old_dir / where, new_dir)
