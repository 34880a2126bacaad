"""Bad input: every error names the file, the path inside it and the reason (exit code 2)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_fate.cli import main
from airflow_fate.domain.loaders import load_cluster, load_inputs, load_models
from airflow_fate.errors import InputError
from tests.conftest import EXAMPLES


def test_examples_load() -> None:
    inputs = load_inputs(
        EXAMPLES / "cluster.yaml", EXAMPLES / "models.yaml", EXAMPLES / "workload.json"
    )
    assert len(inputs.cluster.gpus) == 40
    assert len(inputs.workload.workflows) == 2


def base_workload() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / "workload.json").read_text())
    return data


def edit(fn: Any) -> dict[str, Any]:
    data = copy.deepcopy(base_workload())
    fn(data)
    return data


def _set(path: list[Any], value: Any) -> Any:
    def fn(d: dict[str, Any]) -> None:
        cur: Any = d
        for p in path[:-1]:
            cur = cur[p]
        cur[path[-1]] = value

    return fn


WORKLOAD_CASES = [
    pytest.param(
        _set(["workflows", 0, "stages", 2, "model"], "gpt-9"),
        "workflows[0].stages[2].model",
        "unknown model 'gpt-9'",
        id="unknown-model",
    ),
    pytest.param(
        _set(["workflows", 0, "stages", 1, "parents"], ["nope"]),
        "workflows[0].stages[1].parents[0]",
        "unknown stage 'nope'",
        id="unknown-parent",
    ),
    pytest.param(
        _set(["workflows", 0, "stages", 0, "parents"], ["judge"]),
        "workflows[0].stages",
        "dependency cycle",
        id="cycle",
    ),
    pytest.param(
        _set(["workflows", 1, "stages", 1, "id"], "map_0"),
        "workflows[1].stages[1].id",
        "duplicate stage id 'map_0'",
        id="duplicate-stage",
    ),
    pytest.param(
        _set(["workflows", 1, "id"], "rag-0001"),
        "workflows[1].id",
        "duplicate workflow id",
        id="duplicate-workflow",
    ),
    pytest.param(
        _set(["workflows", 0, "stages", 0, "input_tokens"], -5),
        "workflows[0].stages[0].input_tokens",
        "greater than or equal to 0",
        id="negative-number",
    ),
    pytest.param(
        _set(["workflows", 0, "arrival_s"], -1.0),
        "workflows[0].arrival_s",
        "greater than or equal to 0",
        id="negative-arrival",
    ),
    pytest.param(
        _set(["workflows", 0, "stages", 3, "max_shards"], 1),
        "workflows[0].stages[3].max_shards",
        "min_shards (2) is greater than max_shards (1)",
        id="shard-bounds",
    ),
    pytest.param(
        _set(["workflows", 0, "stages", 0, "colour"], "red"),
        "workflows[0].stages[0].colour",
        "Extra inputs are not permitted",
        id="unknown-field",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "reason"), WORKLOAD_CASES)
def test_bad_workload(
    tmp_path: Path, mutate: Any, path: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "workload.json"
    bad.write_text(json.dumps(edit(mutate)))
    code = main(
        [
            "simulate",
            "--cluster",
            str(EXAMPLES / "cluster.yaml"),
            "--models",
            str(EXAMPLES / "models.yaml"),
            "--workload",
            str(bad),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err and path in err and reason in err
    assert "Traceback" not in err


def test_stage_that_fits_no_node(tmp_path: Path) -> None:
    models = yaml.safe_load((EXAMPLES / "models.yaml").read_text())
    models["models"]["llama-3.1-70b-instruct"]["max_shards"] = 2
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    bad = tmp_path / "workload.json"
    bad.write_text(json.dumps(edit(_set(["workflows", 0, "stages", 3, "max_shards"], 2))))
    models["models"]["llama-3.1-70b-instruct"]["weights_gib"] = 500.0
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    with pytest.raises(InputError) as err:
        load_inputs(EXAMPLES / "cluster.yaml", tmp_path / "models.yaml", bad)
    assert err.value.path == "workflows[0].stages[3]"
    assert "fits no node even at 2 shards" in err.value.reason


def test_unknown_gpu_type(tmp_path: Path) -> None:
    cluster = yaml.safe_load((EXAMPLES / "cluster.yaml").read_text())
    cluster["nodes"][2]["gpu_type"] = "TPU"
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    with pytest.raises(InputError) as err:
        load_cluster(tmp_path / "cluster.yaml")
    assert err.value.path == "nodes[2].gpu_type" and "unknown gpu_type 'TPU'" in err.value.reason


def test_models_on_disk_must_be_catalog_models(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "cluster.yaml").read_text())
    data["nodes"][1]["models_on_disk"] = ["llama-3.1-8b-instruct", "gpt-9"]
    p = tmp_path / "cluster.yaml"
    p.write_text(yaml.safe_dump(data))
    cluster = load_cluster(p)
    assert cluster.nodes[1].models_on_disk == ("llama-3.1-8b-instruct", "gpt-9")
    with pytest.raises(InputError) as err:
        load_models(EXAMPLES / "models.yaml", cluster)
    assert err.value.reason == (
        "no model 'gpt-9', which cluster.yaml nodes[1].models_on_disk[1] names"
    )


def test_malformed_yaml(tmp_path: Path) -> None:
    p = tmp_path / "models.yaml"
    p.write_text("models:\n  a: [1, 2\n")
    with pytest.raises(InputError) as err:
        load_models(p)
    assert "malformed YAML at line" in err.value.reason


def test_malformed_json(tmp_path: Path) -> None:
    p = tmp_path / "w.json"
    p.write_text('{"workflows": [}')
    with pytest.raises(InputError) as err:
        load_inputs(EXAMPLES / "cluster.yaml", EXAMPLES / "models.yaml", p)
    assert err.value.source == str(p) and "malformed JSON at line 1" in err.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_cluster(tmp_path / "absent.yaml")
    assert err.value.reason == "file not found"


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("")
    with pytest.raises(InputError, match="file is empty"):
        load_cluster(p)


def test_unknown_policy_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--cluster",
            str(EXAMPLES / "cluster.yaml"),
            "--models",
            str(EXAMPLES / "models.yaml"),
            "--workload",
            str(EXAMPLES / "workload.json"),
            "--policy",
            "nope",
        ]
    )
    assert code == 2 and "unknown policy 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["cluster", "models", "workload"])
def test_schema_command(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", fmt]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and "properties" in schema
