"""Frontier stages that agree on what `Fate._candidates` reads share one candidate list.

The sharing is a planner speed-up only: a run must place every stage exactly where it
would with every stage's candidates built on their own.
"""

from __future__ import annotations

import pytest

from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.loaders import Inputs
from airflow_fate.planner.fate import Fate
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate
from airflow_fate.spine.metrics import RunResult
from airflow_fate.workloads import GenerateRequest, generate


def _run(inputs: Inputs, suite: str, policy: str) -> RunResult:
    workload = generate(GenerateRequest(suite, 30, seed=3), inputs.cluster, inputs.catalog)
    result = simulate(
        inputs.cluster, inputs.catalog, workload.workload, make_policy(policy, seed=3), seed=3
    )
    return result.without_timings()


@pytest.mark.parametrize("policy", ["fate", "fate-no-shards"])
@pytest.mark.parametrize("suite", ["real-dag", "prefix-reuse"])
def test_shared_candidates_place_every_stage_as_unshared_ones_do(
    example_inputs: Inputs, suite: str, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    build = Fate._candidates

    def counted(self: Fate, stage: StageInfo, *args: object, **kwargs: object) -> object:
        built.append(stage.uid)
        return build(self, stage, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Fate, "_candidates", counted)
    shared = _run(example_inputs, suite, policy)
    shared_builds = len(built)
    monkeypatch.setattr(Fate, "_candidate_key", lambda self, stage, snap, cost: (stage.uid,))
    built.clear()
    apart = _run(example_inputs, suite, policy)
    assert shared_builds < len(built), "no two frontier stages shared their candidates"
    assert shared.placements == apart.placements
    assert shared == apart
