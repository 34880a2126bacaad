"""File loaders for the three input formats, with errors that name file, path and reason.

Every failure, from a missing file to a dependency cycle, becomes one `InputError`; the
CLI prints it and exits with code 2. Pydantic's error locations are rendered as
``workflows[3].stages[1].parents[0]`` so a user can find the spot in their file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.errors import InputError

_M = TypeVar("_M", bound=BaseModel)


def format_loc(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as ``a.b[3].c``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _read_document(path: Path) -> Any:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "file not found") from None
    except OSError as exc:
        raise InputError(source, "", f"cannot read file: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                source, "", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(source, "", f"malformed YAML{where}: {problem}") from None


def _validate(model: type[_M], data: Any, source: str) -> _M:
    if data is None:
        raise InputError(source, "", "file is empty")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        raise InputError(source, format_loc(first["loc"]), msg) from None


def _raise_first(source: str, errors: list[tuple[str, str]]) -> None:
    if errors:
        path, reason = errors[0]
        raise InputError(source, path, reason)


def load_cluster(path: str | Path) -> Cluster:
    """Load and check a ``cluster.yaml``."""
    p = Path(path)
    cluster = _validate(Cluster, _read_document(p), str(p))
    _raise_first(str(p), cluster.reference_errors())
    return cluster


def load_models(path: str | Path, cluster: Cluster | None = None) -> ModelCatalog:
    """Load and check a ``models.yaml`` (against ``cluster`` when given)."""
    p = Path(path)
    catalog = _validate(ModelCatalog, _read_document(p), str(p))
    _raise_first(str(p), catalog.reference_errors(cluster))
    return catalog


def load_workload(
    path: str | Path, catalog: ModelCatalog, cluster: Cluster | None = None
) -> Workload:
    """Load and check a ``workload.json`` against the catalog (and cluster for fit)."""
    p = Path(path)
    workload = _validate(Workload, _read_document(p), str(p))
    _raise_first(str(p), workload.reference_errors(catalog, cluster))
    return workload


@dataclass(frozen=True)
class Inputs:
    """The three documents a scheduling run needs, loaded and cross-checked."""

    cluster: Cluster
    catalog: ModelCatalog
    workload: Workload


def load_inputs(cluster: str | Path, models: str | Path, workload: str | Path) -> Inputs:
    """Load cluster, catalog and workload in dependency order."""
    c = load_cluster(cluster)
    m = load_models(models, c)
    return Inputs(cluster=c, catalog=m, workload=load_workload(workload, m, c))
