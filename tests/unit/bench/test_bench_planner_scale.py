"""``airflow-fate bench-planner``: scaled clusters, mid-run snapshots and the timing table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_fate.bench.planner_scale import build_scenario, scale_cluster
from airflow_fate.cli import main
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def base() -> Cluster:
    return load_cluster(EXAMPLES / "cluster.yaml")


@pytest.fixture(scope="module")
def catalog(base: Cluster) -> ModelCatalog:
    return load_models(EXAMPLES / "models.yaml", base)


def test_the_example_size_is_the_example_cluster(base: Cluster) -> None:
    assert scale_cluster(40, base) is base


def test_other_sizes_repeat_the_node_mix_as_8_gpu_nodes(base: Cluster) -> None:
    big = scale_cluster(512, base)
    assert len(big.gpus) == 512 and len(big.node_gpus) == 64
    types = [n.gpu_type for n in big.nodes]
    assert types[: len(base.nodes)] == [n.gpu_type for n in base.nodes]
    assert {t: types.count(t) for t in set(types)} == {
        "H100-80GB": 16,
        "A100-40GB": 16,
        "L4-24GB": 32,
    }
    assert len({n.name for n in big.nodes}) == 64


def test_sizes_that_are_not_whole_nodes_are_refused(base: Cluster) -> None:
    with pytest.raises(InputError, match="multiple of 8") as err:
        scale_cluster(12, base)
    assert err.value.source == "--sizes"


def test_scenario_is_a_busy_mid_run_state(base: Cluster, catalog: ModelCatalog) -> None:
    scenario = build_scenario(6, base, catalog)
    snap = scenario.snap
    assert len(snap.frontier) == 6
    assert snap.now > 0
    assert any(st.busy_until > snap.now for st in snap.gpus), "some GPUs busy"
    assert any(st.resident for st in snap.gpus), "models resident"
    assert snap.finished, "some stages done, their outputs placed"


def test_cli_prints_and_writes_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.json"
    args = ["bench-planner", "--sizes", "3x40,3x16", "--policies", "greedy-eft,fate"]
    assert main([*args, "--repeats", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    keys = [(r["ready"], r["gpus"], r["policy"], r["mode"]) for r in rows]
    assert keys == [
        (n, g, p, m)
        for n, g in ((3, 40), (3, 16))
        for p in ("greedy-eft", "fate")
        for m in ("cold", "warm")
    ]
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["repeats"] == 2
    assert "p99" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        pytest.param(["--sizes", "4by40"], "--sizes", id="size-format"),
        pytest.param(["--sizes", "4x12"], "--sizes", id="size-not-whole-nodes"),
        pytest.param(["--policies", "nope"], "--policies", id="policy"),
        pytest.param(["--repeats", "0"], "--repeats", id="repeats"),
    ],
)
def test_bad_options_exit_2(args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-planner", *args]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: ")
