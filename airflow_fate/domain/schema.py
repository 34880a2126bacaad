"""JSON Schema export of the input formats (versioned with ``version: 1``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload

SCHEMAS: dict[str, type[BaseModel]] = {
    "cluster": Cluster,
    "models": ModelCatalog,
    "workload": Workload,
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of format ``name`` (``cluster``, ``models`` or ``workload``)."""
    schema = SCHEMAS[name].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
