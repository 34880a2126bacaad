"""File loaders for the three input formats, with errors that name file, path and reason.

Every failure, from a missing file to a dependency cycle, becomes one `InputError`; the
CLI prints it and exits with code 2. Pydantic's error locations are rendered as
``workflows[3].stages[1].parents[0]`` so a user can find the spot in their file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.errors import InputError, format_loc

__all__ = [
    "Inputs",
    "describe_error",
    "format_loc",  # moved to airflow_fate.errors; still imported from here
    "load_cluster",
    "load_inputs",
    "load_models",
    "load_workload",
    "parse_text",
    "read_document",
    "read_text",
    "validate_document",
]

_M = TypeVar("_M", bound=BaseModel)


_INSTANCE_OF = re.compile(r" or instance of \w+")


def describe_error(error: ErrorDetails) -> tuple[str, str]:
    """A pydantic error as ``(path, reason)`` in the terms of the user's document.

    Pydantic names its own classes ("a valid dictionary or instance of GpuType") and marks
    a bad mapping key with a ``[key]`` step; a user wrote neither, so both are reworded.
    """
    loc = list(error["loc"])
    reason = _INSTANCE_OF.sub("", error["msg"].removeprefix("Value error, "))
    if len(loc) >= 2 and loc[-1] == "[key]":
        reason = f"key {loc[-2]!r}: {reason}"
        loc = loc[:-2]
    return format_loc(loc), " ".join(reason.split())


def parse_text(text: str, source: str, *, as_json: bool = False) -> Any:
    """Parse a YAML (or JSON) document; any problem with it is one one-line `InputError`.

    Beyond syntax errors, parsers raise `ValueError` for values they cannot build (a
    date such as ``2021-13-01``, an integer of more than 4300 digits) and `RecursionError`
    for absurd nesting; those are the document's fault too, not a crash.
    """
    kind = "JSON" if as_json else "YAML"
    try:
        return json.loads(text) if as_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        reason = f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise InputError(source, "", reason) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise InputError(source, "", f"malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise InputError(source, "", f"malformed {kind}: nested too deeply") from None
    except (ValueError, OverflowError) as exc:
        raise InputError(source, "", f"malformed {kind}: {' '.join(str(exc).split())}") from None
    except (LookupError, AttributeError, TypeError):
        # PyYAML's constructors fail this way on explicitly tagged values they cannot
        # build (``!!float ''``, ``!!bool x``, ``!!timestamp x``): found by fuzzing.
        reason = f"malformed {kind}: a tagged value (such as !!float or !!bool) cannot be read"
        raise InputError(source, "", reason) from None


def read_text(path: Path) -> str:
    """A file's text; a missing, unreadable or non-UTF-8 file is an `InputError`."""
    source = str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "file not found") from None
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        raise InputError(source, "", reason) from None
    except OSError as exc:
        raise InputError(source, "", f"cannot read file: {exc.strerror or exc}") from None


def read_document(path: Path) -> Any:
    """A YAML file, or JSON by its ``.json`` suffix, parsed (`read_text`, `parse_text`)."""
    return parse_text(read_text(path), str(path), as_json=path.suffix.lower() == ".json")


def validate_document(model: type[_M], data: Any, source: str) -> _M:
    """``data`` as ``model``; errors name the first bad field (`describe_error`).

    Every document is a mapping at the top; anything else is said so in words rather
    than in pydantic's terms.
    """
    if data is None:
        raise InputError(source, "", "file is empty")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        raise InputError(source, "", f"expected a mapping of fields at the top, got {kind}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        path, reason = describe_error(exc.errors()[0])
        raise InputError(source, path, reason) from None


def _raise_first(source: str, errors: list[tuple[str, str]]) -> None:
    if errors:
        path, reason = errors[0]
        raise InputError(source, path, reason)


def load_cluster(path: str | Path) -> Cluster:
    """Load and check a ``cluster.yaml``."""
    p = Path(path)
    cluster = validate_document(Cluster, read_document(p), str(p))
    _raise_first(str(p), cluster.reference_errors())
    return cluster


def load_models(path: str | Path, cluster: Cluster | None = None) -> ModelCatalog:
    """Load and check a ``models.yaml`` (against ``cluster`` when given)."""
    p = Path(path)
    catalog = validate_document(ModelCatalog, read_document(p), str(p))
    _raise_first(str(p), catalog.reference_errors(cluster))
    return catalog


def load_workload(
    path: str | Path, catalog: ModelCatalog, cluster: Cluster | None = None
) -> Workload:
    """Load and check a ``workload.json`` against the catalog (and cluster for fit)."""
    p = Path(path)
    workload = validate_document(Workload, read_document(p), str(p))
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
