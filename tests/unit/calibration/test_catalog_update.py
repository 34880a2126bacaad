"""Where measured rates land in ``models.yaml``, how the diff reads, and the checked write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_fate.calibration.catalog_update import (
    RateUpdate,
    apply_updates,
    merge_base,
    significant,
    unified_diff,
    write_checked,
)
from airflow_fate.calibration.measure import Measurement
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_models
from airflow_fate.errors import InputError

CLUSTER = Cluster.model_validate(
    {
        "gpu_types": {
            "ref": {"memory_gib": 80, "relative_speed": 1.0},
            "slow": {"memory_gib": 24, "relative_speed": 0.25},
        },
        "interconnect": {
            "host_to_gpu_gbps": 25.0,
            "nvlink_gbps": 300.0,
            "local_disk_gbps": 3.0,
            "remote_store_gbps": 1.25,
        },
        "nodes": [
            {
                "name": "a",
                "gpu_type": "ref",
                "gpu_count": 1,
                "host_cache_gib": 64,
                "network_gbps": 10,
            },
            {
                "name": "b",
                "gpu_type": "slow",
                "gpu_count": 1,
                "host_cache_gib": 64,
                "network_gbps": 10,
            },
        ],
    }
)


def _doc() -> dict[str, Any]:
    return {
        "version": 1,
        "models": {
            "lm": {
                "path": "weights/lm",
                "weights_gib": 1.0,
                "kv_bytes_per_token": 2048,
                "prefill_tokens_per_s": 1000,
                "decode_tokens_per_s": 50,
                "max_shards": 2,
            },
            "embed": {
                "path": "pkg:some_module/model",
                "weights_gib": 0.1,
                "kv_bytes_per_token": 0,
                "prefill_tokens_per_s": 5000,
                "decode_tokens_per_s": 0,
            },
        },
    }


def _apply(updates: list[RateUpdate], tmp_path: Path) -> dict[str, Any]:
    models = tmp_path / "models.yaml"
    base = merge_base(_doc(), models, models)
    return apply_updates(base, _doc(), models, models, updates, {"ref"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(6886.4, 6890, id="whole"),
        pytest.param(11.437, 11.4, id="fraction"),
        pytest.param(0.012345, 0.0123, id="small"),
    ],
)
def test_significant(value: float, expected: float) -> None:
    assert significant(value) == expected


def test_reference_type_sets_top_level_rates_and_keeps_other_fields(tmp_path: Path) -> None:
    new = _apply([RateUpdate("lm", "ref", 1234.5, 12.34)], tmp_path)
    lm = new["models"]["lm"]
    assert (lm["prefill_tokens_per_s"], lm["decode_tokens_per_s"]) == (1230, 12.3)
    assert "per_gpu_type" not in lm
    assert lm["max_shards"] == 2 and lm["path"] == "weights/lm"
    assert new["models"]["embed"] == _doc()["models"]["embed"]


def test_other_type_gets_an_override(tmp_path: Path) -> None:
    new = _apply([RateUpdate("lm", "slow", 300.0, 9.0)], tmp_path)
    lm = new["models"]["lm"]
    assert lm["prefill_tokens_per_s"] == 1000
    assert lm["per_gpu_type"] == {"slow": {"decode_tokens_per_s": 9, "prefill_tokens_per_s": 300}}


def test_a_measured_load_rate_goes_where_the_rates_go(tmp_path: Path) -> None:
    new = _apply(
        [
            RateUpdate("lm", "ref", 1000.0, 10.0, 0.031234),
            RateUpdate("lm", "slow", 300.0, 9.0, 2.0),
        ],
        tmp_path,
    )
    lm = new["models"]["lm"]
    assert lm["load_gbps"] == 0.0312
    assert lm["per_gpu_type"]["slow"]["load_gbps"] == 2


def test_encoder_keeps_its_zero_decode_rate(tmp_path: Path) -> None:
    new = _apply([RateUpdate("embed", "slow", 800.0, None)], tmp_path)
    assert new["models"]["embed"]["per_gpu_type"]["slow"] == {
        "decode_tokens_per_s": 0,
        "prefill_tokens_per_s": 800,
    }


def test_diff_names_only_changed_fields(tmp_path: Path) -> None:
    old = _doc()
    new = _apply([RateUpdate("lm", "ref", 2000.0, 50.0)], tmp_path)
    diff = unified_diff(old, new, "a/models.yaml", "b/models.yaml")
    changed = [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == ["-    prefill_tokens_per_s: 1000", "+    prefill_tokens_per_s: 2000"]
    assert unified_diff(old, old, "a", "b") == ""


def test_copy_to_another_directory_rebases_relative_paths(tmp_path: Path) -> None:
    models, out = tmp_path / "models.yaml", tmp_path / "out" / "models.yaml"
    base = merge_base(_doc(), models, out)
    assert base["models"]["lm"]["path"] == "../weights/lm"
    assert base["models"]["embed"]["path"] == "pkg:some_module/model"


def test_merge_into_an_existing_file_copies_missing_models(tmp_path: Path) -> None:
    models, out = tmp_path / "models.yaml", tmp_path / "out" / "models.yaml"
    out.parent.mkdir()
    only_embed = {"version": 1, "models": {"embed": _doc()["models"]["embed"]}}
    out.write_text(yaml.safe_dump(only_embed))
    base = merge_base(_doc(), models, out)
    new = apply_updates(base, _doc(), models, out, [RateUpdate("lm", "ref", 10.0, 1.0)], {"ref"})
    assert set(new["models"]) == {"embed", "lm"}
    assert new["models"]["lm"]["path"] == "../weights/lm"


def test_write_checked_round_trips_through_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    new = _apply([RateUpdate("lm", "slow", 300.0, 9.0)], tmp_path)
    write_checked(new, path, CLUSTER)
    catalog = load_models(path, CLUSTER)
    assert catalog.models["lm"].per_gpu_type["slow"].prefill_tokens_per_s == 300


def test_write_checked_rejects_a_bad_document_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("keep me")
    bad = _apply([RateUpdate("lm", "unknown-type", 300.0, 9.0)], tmp_path)
    with pytest.raises(InputError, match="unknown gpu_type"):
        write_checked(bad, path, CLUSTER)
    assert path.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.yaml"]


def test_measurement_medians() -> None:
    m = Measurement("lm", "cpu0", "ref", decodes=True)
    m.load_s["disk"] = [3.0, 1.0, 2.0]
    m.prefill_tokens_per_s.extend([10.0, 30.0])
    assert m.median_load_s("disk") == 2.0
    assert m.median_load_s("host-cache") is None
    assert m.prefill_rate == 20.0
    assert m.decode_rate is None
    assert Measurement("e", "cpu0", "ref", decodes=False).decode_rate == 0.0
