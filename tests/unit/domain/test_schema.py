"""The exported JSON Schemas accept the shipped examples and reject broken ones."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from airflow_fate.domain.schema import json_schema
from tests.conftest import EXAMPLES

FILES = {"cluster": "cluster.yaml", "models": "models.yaml", "workload": "workload.json"}


def load(name: str) -> object:
    text = (EXAMPLES / FILES[name]).read_text()
    return json.loads(text) if name == "workload" else yaml.safe_load(text)


@pytest.mark.parametrize("name", list(FILES))
def test_examples_validate(name: str) -> None:
    jsonschema.validate(load(name), json_schema(name))


def test_schema_rejects_missing_required_field() -> None:
    data = load("cluster")
    assert isinstance(data, dict)
    del data["interconnect"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema("cluster"))
