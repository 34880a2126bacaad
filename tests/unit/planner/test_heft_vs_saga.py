"""Our HEFT agrees with an independent implementation (anrg-saga 2.0.2) with state off.

State costs off: model weights negligible (no load time), no prefixes, outputs of size 0.
Each node has one GPU of a distinct speed, so EFT ties (which the two implementations
may break differently) do not occur. Stage time = tokens / rates / relative speed, which
is saga's ``task.cost / node.speed``.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate

saga = pytest.importorskip("saga")
heft_module = pytest.importorskip("saga.schedulers.heft")

SPEEDS = [1.0, 0.8, 0.55, 0.3, 0.18]
RATES = {"m-a": (9000.0, 900.0), "m-b": (4000.0, 300.0), "m-c": (20000.0, 2500.0)}


def instance(
    seed: int,
) -> tuple[Cluster, ModelCatalog, Workload, dict[str, float], list[tuple[str, str]]]:
    rng = random.Random(seed)
    cluster = Cluster.model_validate(
        {
            "gpu_types": {
                f"t{i}": {"memory_gib": 80, "relative_speed": s} for i, s in enumerate(SPEEDS)
            },
            "interconnect": {
                "host_to_gpu_gbps": 25,
                "nvlink_gbps": 300,
                "local_disk_gbps": 3,
                "remote_store_gbps": 1.25,
            },
            "nodes": [
                {
                    "name": f"n{i}",
                    "gpu_type": f"t{i}",
                    "gpu_count": 1,
                    "host_cache_gib": 64,
                    "network_gbps": 10,
                }
                for i in range(len(SPEEDS))
            ],
        }
    )
    catalog = ModelCatalog.model_validate(
        {
            "models": {
                m: {
                    "weights_gib": 1e-9,
                    "kv_bytes_per_token": 0,
                    "prefill_tokens_per_s": p,
                    "decode_tokens_per_s": d,
                }
                for m, (p, d) in RATES.items()
            }
        }
    )
    n = rng.randint(6, 14)
    stages: list[dict[str, Any]] = []
    costs: dict[str, float] = {}
    edges: list[tuple[str, str]] = []
    for i in range(n):
        parents = [f"s{j}" for j in range(i) if rng.random() < 0.3]
        model = rng.choice(list(RATES))
        tin, tout = rng.randint(500, 8000), rng.randint(50, 800)
        stages.append(
            {
                "id": f"s{i}",
                "model": model,
                "input_tokens": tin,
                "output_tokens": tout,
                "output_mb": 0.0,
                "parents": parents,
            }
        )
        p, d = RATES[model]
        costs[f"s{i}"] = tin / p + tout / d
        edges.extend((q, f"s{i}") for q in parents)
    workload = Workload.model_validate(
        {"workflows": [{"id": "w", "arrival_s": 0.0, "stages": stages}]}
    )
    return cluster, catalog, workload, costs, edges


@pytest.mark.parametrize("seed", range(20))
def test_heft_makespan_matches_saga(seed: int) -> None:
    cluster, catalog, workload, costs, edges = instance(seed)
    ours = simulate(cluster, catalog, workload, make_policy("heft"), seed=0, noise=0.0)
    logging.getLogger().setLevel(logging.ERROR)  # saga warns when it adds a super source/sink
    network = saga.Network.create(
        nodes=[(f"n{i}", s) for i, s in enumerate(SPEEDS)],
        edges=[
            (f"n{a}", f"n{b}", 1.0) for a in range(len(SPEEDS)) for b in range(len(SPEEDS)) if a < b
        ],
    )
    graph = saga.TaskGraph.create(
        tasks=list(costs.items()), dependencies=[(a, b, 0.0) for a, b in edges]
    )
    theirs = heft_module.HeftScheduler().schedule(network, graph).makespan
    assert ours.makespan_s == pytest.approx(theirs, rel=1e-6, abs=1e-5)
