"""A run that leaves stages unrun ends with exit 1 and one line saying why, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cli import main
from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.plan import Plan
from airflow_fate.errors import UnrunStagesError
from airflow_fate.planner import registry
from airflow_fate.planner.policy import Policy
from airflow_fate.sim.simulator import simulate
from airflow_fate.state.cluster_state import Snapshot
from tests.conftest import EXAMPLES, make_catalog, make_cluster, make_workload, stage

IDLE = "never-places"


class NeverPlaces:
    """A broken policy: it never places a stage."""

    name = IDLE

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        return Plan()


def _never_places(seed: int) -> Policy:
    return NeverPlaces()


@pytest.fixture
def broken_policy(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(registry._REGISTRY, IDLE, _never_places)
    return IDLE


def _inputs() -> list[str]:
    return ["--cluster", str(EXAMPLES / "cluster.yaml"), "--models", str(EXAMPLES / "models.yaml")]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(
            ["simulate", *_inputs(), "--workload", str(EXAMPLES / "workload.json")], id="simulate"
        ),
        pytest.param(
            ["bench", "--suite", "real-dag", "--seeds", "1", "--workflows", "3", "--jobs", "1"],
            id="bench",
        ),
    ],
)
def test_unrun_stages_exit_1_with_one_line(
    argv: list[str], broken_policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--out", str(tmp_path / "bench"), *_inputs()] if argv[0] == "bench" else []
    policy_flag = "--policies" if argv[0] == "bench" else "--policy"
    assert main([*argv, *extra, policy_flag, broken_policy]) == 1
    lines = capsys.readouterr().err.splitlines()
    progress = [ln for ln in lines if not ln.startswith("error: ")]
    assert all(": " in ln and ln.endswith(" s)") for ln in progress), "only progress lines"
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], "one error line, at the end"
    err = errors[0]
    assert "Traceback" not in err
    assert err.startswith(f"error: policy {broken_policy!r} left ")
    assert "ready but never placed" in err
    assert "but the policy never placed it" in err


def test_message_says_a_stage_fits_no_node() -> None:
    """A stage no node can hold (the loaders reject such files; code can build one)."""
    cluster = make_cluster([("n0", "small", 2)])
    catalog = make_catalog()
    workload = make_workload([stage("a"), stage("b", "big-lm", ["a"])], copies=1)
    policy = registry.make_policy("greedy-eft")
    with pytest.raises(UnrunStagesError) as info:
        simulate(cluster, catalog, workload, policy)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("policy 'greedy-eft' left 1 of 2 stages unrun (1 ready but never")
    assert "wf0/b" in message
    assert "big-lm needs 4 GPUs with 30.1 GiB each" in message
    assert "no node has them (largest nodes: 2 x small with 21.6 GiB usable)" in message
