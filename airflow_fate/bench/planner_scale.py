"""Planner scale benchmark: wall-clock time of single ``plan`` calls at a given size.

A size is (ready stages N) x (GPUs M). M = 40 is ``examples/cluster.yaml``; any other M
(a multiple of 8) is that cluster's node mix scaled up, ``M / 8`` nodes of 8 GPUs each
(512 GPUs: 16 H100, 16 A100 and 32 L4 nodes).

The snapshot is a realistic mid-run state, not an empty cluster, because the planners'
work depends on it (busy GPUs widen the candidate sets with waits; resident models and
prefix KV feed FATE's future terms; placed parents feed locality):

1. generate a ``real-dag`` workload; arrive workflows at t = 0 until about half the GPUs'
   worth of stages is ready; place them with ``greedy-eft`` and start every queue head
   (models load, GPUs turn busy);
2. finish the earlier-ending half of the started stages at their estimated end times
   (outputs land, prefix KV stays warm, children become ready) and start what heads the
   freed queues;
3. arrive further workflows until N stages are ready; the frontier is the first N.

Two timings per policy, ``repeats`` calls each on that snapshot:

- ``cold``: a fresh policy per call, so each call also does its once-per-workflow work
  (FATE ranks every workflow and counts its demand): a burst of new arrivals;
- ``warm``: one policy, primed by an untimed call: the steady state, where the frontier's
  workflows have been seen before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.errors import InputError
from airflow_fate.planner.registry import make_policy
from airflow_fate.spine.dispatch import Dispatcher
from airflow_fate.state.cluster_state import ClusterState, Snapshot
from airflow_fate.workloads import GenerateRequest, generate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GPUS_PER_NODE = 8
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((16, 40), (64, 40), (256, 512))
MODES = ("cold", "warm")


@dataclass(frozen=True)
class Scenario:
    """A planning decision to time: the snapshot and the cost model to plan with."""

    snap: Snapshot
    cost: CostModel


class Timing(BaseModel):
    """Milliseconds of one policy's ``plan`` at one size in one mode."""

    ready: int
    gpus: int
    policy: str
    mode: str
    repeats: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def scale_cluster(gpus: int, base: Cluster) -> Cluster:
    """``base`` itself if it has ``gpus`` GPUs, else its node mix as 8-GPU nodes.

    Raises:
        InputError: on ``--sizes`` when ``gpus`` is not a multiple of 8.
    """
    if gpus == len(base.gpus):
        return base
    if gpus < 1 or gpus % GPUS_PER_NODE:
        raise InputError(
            "--sizes",
            "",
            f"{gpus} GPUs: use {len(base.gpus)} (the example cluster) or a multiple of "
            f"{GPUS_PER_NODE} (nodes of {GPUS_PER_NODE})",
        )
    templates = base.nodes
    nodes = [
        {
            **templates[i % len(templates)].model_dump(),
            "name": f"{templates[i % len(templates)].name}-{i // len(templates):02d}",
            "gpu_count": GPUS_PER_NODE,
        }
        for i in range(gpus // GPUS_PER_NODE)
    ]
    # Validate afresh: a model_copy would keep the base's cached GPU tables.
    return Cluster.model_validate({**base.model_dump(), "nodes": nodes})


def build_scenario(ready: int, cluster: Cluster, catalog: ModelCatalog, seed: int = 0) -> Scenario:
    """The mid-run snapshot with ``ready`` frontier stages (see the module docstring)."""
    warm_target = max(1, len(cluster.gpus) // 2)
    request = GenerateRequest(suite="real-dag", workflows=ready + warm_target + 8, seed=seed)
    workload = generate(request, cluster, catalog).workload
    graph = WorkloadGraph.from_workload(workload, catalog)
    state = ClusterState(cluster, catalog, graph)
    cost = CostModel(cluster, catalog)
    dispatch = Dispatcher(state, cost, make_policy("greedy-eft", seed))
    arrivals = iter(range(len(graph.workflows)))
    _arrive_until(dispatch, arrivals, warm_target, 0.0)
    dispatch.decide(0.0)
    runs = _start_heads(dispatch, cost, tuple(range(len(cluster.gpus))), 0.0)
    ends = sorted((run, uid) for uid, run in runs.items())
    now = 0.0
    for end, uid in ends[: len(ends) // 2]:
        now = end
        freed = dispatch.finished(uid, end, end)  # started at 0: ran ``end`` seconds
        _start_heads(dispatch, cost, freed, end)
    _arrive_until(dispatch, arrivals, ready, now)
    snap = state.snapshot()
    return Scenario(snap=replace(snap, frontier=snap.frontier[:ready]), cost=cost)


def _arrive_until(dispatch: Dispatcher, arrivals: Iterator[int], ready: int, now: float) -> None:
    while len(dispatch.state.ready) < ready:
        wf = next(arrivals, None)
        if wf is None:
            raise AssertionError("the generated workload has too few workflows")
        dispatch.arrive(wf, now)


def _start_heads(
    dispatch: Dispatcher, cost: CostModel, gpus: tuple[int, ...], now: float
) -> dict[int, float]:
    """Start every stage heading idle queues; returns their estimated end times."""
    ends: dict[int, float] = {}
    for uid in dispatch.startable(gpus):
        stage = dispatch.state.graph.stages[uid]
        placed = dispatch.state.placement_of(uid)
        assert placed is not None
        ends[uid] = now + cost.run_cost(stage, placed, dispatch.state.snapshot()).run
        dispatch.started(uid, now)
    return ends


def time_policy(scenario: Scenario, policy: str, mode: str, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` ``plan`` calls of ``policy`` in ``mode``."""
    samples: list[float] = []
    planner = make_policy(policy, 0)
    if mode == "warm":
        planner.plan(scenario.snap, scenario.cost)
    for _ in range(repeats):
        if mode == "cold":
            planner = make_policy(policy, 0)
        t0 = time.perf_counter()
        planner.plan(scenario.snap, scenario.cost)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def run_scale(
    sizes: Sequence[tuple[int, int]],
    policies: Sequence[str],
    repeats: int,
    cluster: Cluster,
    catalog: ModelCatalog,
    modes: Sequence[str] = MODES,
) -> list[Timing]:
    """Time every policy in every mode at every size (``cluster``: the 40-GPU base)."""
    out: list[Timing] = []
    for ready, gpus in sizes:
        scaled = scale_cluster(gpus, cluster)  # same GPU types: the catalog still applies
        scenario = build_scenario(ready, scaled, catalog)
        for policy in policies:
            for mode in modes:
                ms = np.asarray(time_policy(scenario, policy, mode, repeats))
                out.append(
                    Timing(
                        ready=len(scenario.snap.frontier),
                        gpus=len(scaled.gpus),
                        policy=policy,
                        mode=mode,
                        repeats=repeats,
                        p50_ms=round(float(np.percentile(ms, 50)), 3),
                        p99_ms=round(float(np.percentile(ms, 99)), 3),
                        max_ms=round(float(ms.max()), 3),
                    )
                )
    return out


def default_inputs() -> tuple[Cluster, ModelCatalog]:
    """The example cluster and catalog (the 40-GPU size and the scaled ones' base)."""
    cluster = load_cluster(EXAMPLES / "cluster.yaml")
    return cluster, load_models(EXAMPLES / "models.yaml", cluster)
