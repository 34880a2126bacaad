"""Online cost correction: factors from observations, persistence, and their effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cost.correction import DECAY, CorrectionStore
from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.loaders import load_inputs
from airflow_fate.errors import InputError
from airflow_fate.state.cluster_state import ClusterState, WorkflowArrived

LOCAL = Path(__file__).resolve().parents[3] / "examples" / "local"
KEY = ("smollm2-135m-instruct", "cpu-slice")


def test_factor_is_a_decayed_ratio_of_sums() -> None:
    store = CorrectionStore()
    store.observe(*KEY, compute=(2.0, 1.0))
    assert store.factors()[0] == {KEY: pytest.approx(2.0)}
    store.observe(*KEY, compute=(3.0, 1.0))
    expected = (DECAY * 2.0 + 3.0) / (DECAY * 1.0 + 1.0)
    assert store.factors()[0][KEY] == pytest.approx(expected)
    assert store.factors()[1] == {}  # no load observed


def test_zero_or_missing_observations_are_ignored() -> None:
    store = CorrectionStore()
    store.observe(*KEY, compute=(0.0, 1.0), load=(5.0, 0.0))
    assert store.factors() == ({}, {})


def test_state_file_round_trip_and_errors(tmp_path: Path) -> None:
    store = CorrectionStore()
    store.observe(*KEY, compute=(1.5, 1.0), load=(0.1, 2.0))
    path = tmp_path / "state" / "correction.json"
    store.save(path)
    again = CorrectionStore.load(path)
    assert again.factors() == store.factors()
    assert CorrectionStore.load(tmp_path / "absent.json").factors() == ({}, {})
    path.write_text('{"version": 1, "entries": [{"model": "m"}]}')
    with pytest.raises(InputError) as err:
        CorrectionStore.load(path)
    assert err.value.path == "entries[0].gpu_type"


def test_cost_model_applies_compute_and_load_factors() -> None:
    inputs = load_inputs(LOCAL / "cluster.yaml", LOCAL / "models.yaml", LOCAL / "workload.json")
    graph = WorkloadGraph.from_workload(inputs.workload, inputs.catalog)
    state = ClusterState(inputs.cluster, inputs.catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    snap = state.snapshot()
    stage = next(s for s in graph.stages if s.model == KEY[0])
    base = CostModel(inputs.cluster, inputs.catalog).run_cost(stage, (0,), snap)
    store = CorrectionStore()
    store.observe(*KEY, compute=(2.0, 1.0), load=(1.0, 4.0))
    corrected = store.cost_model(inputs.cluster, inputs.catalog).run_cost(stage, (0,), snap)
    assert corrected.prefill == pytest.approx(2 * base.prefill)
    assert corrected.decode == pytest.approx(2 * base.decode)
    assert corrected.load == pytest.approx(base.load / 4)
