"""Every registered policy, on every DAG shape, produces a physically valid schedule."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest

from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.models import GIB
from airflow_fate.domain.shards import shard_degrees
from airflow_fate.planner.registry import make_policy, policy_names
from airflow_fate.sim.simulator import simulate
from airflow_fate.spine.metrics import RunResult
from airflow_fate.state.cluster_state import ClusterState
from tests.conftest import SHAPES, make_catalog, make_cluster, make_workload


@pytest.fixture
def memory_guard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Check GPU memory after every state event; collect violations."""
    violations: list[str] = []
    original = ClusterState.apply

    def checked(self: ClusterState, event: Any) -> Any:
        out = original(self, event)
        for g, ref in enumerate(self.cluster.gpus):
            st = self.gpu(g)
            gpu_type = self.cluster.gpu_type_of_node(ref.node)
            used = st.weights_gib
            if st.running is not None:
                s = self.graph.stages[st.running]
                k = len(self.placement_of(st.running) or (1,))
                used += self.catalog.models[s.model].kv_bytes_per_token * s.tokens / GIB / k
            if used > gpu_type.usable_gib + 1e-9:
                violations.append(f"gpu {g}: {used:.1f} GiB > {gpu_type.usable_gib:.1f}")
            kv = sum(gib for _, gib in st.prefix_kv)
            if kv > gpu_type.memory_gib * gpu_type.prefix_kv_fraction + 1e-9:
                violations.append(f"gpu {g}: prefix KV {kv:.2f} GiB over budget")
        return out

    monkeypatch.setattr(ClusterState, "apply", checked)
    return violations


def check_schedule(result: RunResult, graph: WorkloadGraph) -> None:
    placed = [(p.workflow, p.stage) for p in result.placements]
    assert len(placed) == len(set(placed)) == len(graph.stages), "each stage placed exactly once"
    by_key = {(p.workflow, p.stage): p for p in result.placements}
    per_gpu: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for s in graph.stages:
        p = by_key[(s.workflow_id, s.stage_id)]
        for parent in s.parents:
            q = by_key[(s.workflow_id, graph.stages[parent].stage_id)]
            assert p.start_s >= q.end_s - 1e-9, f"{s.stage_id} started before parent ended"
        assert p.start_s >= graph.workflows[s.workflow].arrival_s - 1e-9
        k = len(p.gpus)
        assert s.min_shards <= k <= s.max_shards, f"{s.stage_id}: {k} shards"
        assert k in shard_degrees(s.min_shards, s.max_shards, 64)
        for g in p.gpus:
            per_gpu[(p.node, g)].append((p.start_s, p.end_s))
    for key, spans in per_gpu.items():
        spans.sort()
        for (_, e1), (s2, _) in itertools.pairwise(spans):
            assert s2 >= e1 - 1e-9, f"GPU {key} runs two stages at once"


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("policy", policy_names())
def test_policy_conformance(policy: str, shape: str, memory_guard: list[str]) -> None:
    cluster, catalog = make_cluster(), make_catalog()
    workload = make_workload(SHAPES[shape](), copies=4, gap_s=1.5)
    result = simulate(cluster, catalog, workload, make_policy(policy, seed=3), seed=3, noise=0.15)
    check_schedule(result, WorkloadGraph.from_workload(workload, catalog))
    assert memory_guard == []


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("policy", policy_names())
def test_exact_costs_respect_lower_bound(policy: str, shape: str) -> None:
    """With noise off, actual = estimate, so no schedule can beat the lower bound."""
    cluster, catalog = make_cluster(), make_catalog()
    workload = make_workload(SHAPES[shape](), copies=4, gap_s=1.5)
    result = simulate(cluster, catalog, workload, make_policy(policy, seed=3), seed=3, noise=0.0)
    assert result.makespan_s >= result.lower_bound_s - 1e-6
