"""Fuzzed ``executor_config["fate"]``: a bad one fails its own task, never the planner.

What the executor does with a queued task's config, without Airflow: `read_metadata`
(malformed -> `MetadataError`), `build_layout` (the serialized DAG's view of the same
config), `stage_problem` (unknown model, shard bounds, fits no node) and, for configs
that pass all three, the `FrontierPlanner` that must then place the stage beside a
healthy one. Anything else escaping would reach the scheduler loop, where a planner
exception leaves every queued stage queued.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from airflow_fate.cost.estimator import CostModel
from airflow_fate.executor.frontier import FrontierPlanner
from airflow_fate.executor.layout import TaskNode, build_layout, stage_problem
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.metadata import MetadataError, StageMetadata, read_metadata
from airflow_fate.planner.registry import make_policy
from tests.conftest import make_catalog, make_cluster
from tests.fuzz.checks import CASES, assert_one_line, path_resolves
from tests.fuzz.strategies import JSON_VALUES, mutated

WHERE = 'executor_config["fate"]'

VALID: dict[str, Any] = {
    "fate": {
        "version": 1,
        "model": "mid-lm",
        "input_tokens": 4000,
        "output_tokens": 300,
        "output_mb": 0.25,
        "prefix": {"id": "sys-v1", "tokens": 600},
        "min_shards": 1,
        "max_shards": 2,
    }
}

MODELS = st.sampled_from(["small-lm", "mid-lm", "big-lm", "embed", "gpt-9", ""])

_TOKENS = st.one_of(st.integers(0, 10**6), st.integers(0, 10**18), st.sampled_from([0, 1, 2**63]))

WELL_TYPED = st.fixed_dictionaries(
    {"model": MODELS, "input_tokens": _TOKENS},
    optional={
        "output_tokens": _TOKENS,
        "output_mb": st.floats(0, 1e15) | st.sampled_from([0.0, 1e-300, 1e308]),
        "prefix": st.fixed_dictionaries({"id": st.text(max_size=5), "tokens": _TOKENS}),
        "min_shards": st.integers(1, 9) | st.sampled_from([64, 2**40]),
        "max_shards": st.integers(1, 9) | st.sampled_from([64, 2**40]),
    },
).map(lambda fate: {"fate": fate})
"""Configs of the right types with extreme values: what reaches the planner."""

CONFIGS = st.one_of(
    WELL_TYPED,
    WELL_TYPED,
    st.none(),
    st.just({}),
    mutated(VALID, MODELS),
    mutated(VALID, MODELS),
    mutated(VALID, MODELS),
    st.fixed_dictionaries({"fate": JSON_VALUES}),
    st.dictionaries(st.sampled_from(["fate", "KubernetesExecutor", "x"]), JSON_VALUES),
)

CLUSTER = make_cluster([("n0", "big", 2), ("n1", "small", 2)])
CATALOG = make_catalog()
HEALTHY = StageMetadata(model="small-lm", input_tokens=500, output_tokens=50)


def _assert_metadata_error(exc: MetadataError, config: Any) -> None:
    message = str(exc)
    assert_one_line(message)
    if not isinstance(config, dict):
        assert message.startswith("executor_config: must be a mapping"), message
        return
    assert message.startswith(WHERE), message
    rest = message[len(WHERE) :]
    path, _, reason = rest.removeprefix(".").partition(": ")
    assert reason.strip(), message
    raw = config["fate"]
    if isinstance(raw, dict) and raw:
        assert path and not rest.startswith(":"), f"no field named: {message}"
        assert path_resolves(raw, path), f"{path!r} not in {raw!r}"


@given(st.sampled_from(["fate", "greedy-eft"]), CONFIGS)
def test_executor_config(policy: str, config: Any) -> None:
    CASES["executor_config"] += 1
    try:
        metadata = read_metadata(config)
    except MetadataError as exc:
        _assert_metadata_error(exc, config)
        _assert_layout_rejects(config, str(exc))
        return
    if metadata is None:
        assert not config or "fate" not in config
        return
    problem = stage_problem(metadata, CATALOG, CLUSTER)
    _assert_layout_rejects(config, problem)
    if problem is not None:
        assert_one_line(problem)
        assert problem.startswith(WHERE), problem
        return
    _assert_planned(policy, metadata)


def _assert_layout_rejects(config: Any, reason: str | None) -> None:
    """The serialized DAG's view of the same task agrees, and a healthy task still plans."""
    tasks = [
        TaskNode("healthy", (), HEALTHY.as_executor_config()),
        TaskNode("fuzzed", ("healthy",), config),
    ]
    layout = build_layout(tasks, CATALOG, CLUSTER)
    assert "healthy" in layout.stages
    assert layout.rejected.get("fuzzed") == reason


def _assert_planned(policy: str, metadata: StageMetadata) -> None:
    CASES["executor_config (planned)"] += 1
    planner = FrontierPlanner(CLUSTER, CATALOG, make_policy(policy), CostModel(CLUSTER, CATALOG))
    fuzzed, healthy = TaskKey("d", "fuzzed", "r", 1), TaskKey("d", "healthy", "r", 1)
    planner.offer(fuzzed, metadata, 0.0)
    planner.offer(healthy, HEALTHY, 0.0)
    placed: dict[TaskKey, Any] = {}
    now = 0.0
    for _ in range(3):  # a stage queued behind the other starts once that one finishes
        placed.update({p.key: p for p in planner.decide(now)})
        if len(placed) == 2:
            break
        now += 1.0
        for key in placed:
            planner.finish(key, now, 1.0)
    assert set(placed) == {fuzzed, healthy}
    for p in placed.values():
        assert p.predicted.run >= 0 and p.predicted.run < float("inf")
