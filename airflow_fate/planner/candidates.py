"""Candidate GPU sets for a stage: single GPUs and bounded shard groups inside one node.

Shard groups of k GPUs are drawn from three families, so the list stays short while it
still contains every group a sensible policy would pick:

- aligned blocks (``[0..k)``, ``[k..2k)``, ... of a node): the tensor-parallel layouts that
  share an NVLink switch / PCIe root and fragment a node least;
- the k GPUs of the node that free up first (earliest start);
- groups where the stage's model is already resident for exactly that layout (warm).

Degrees follow `shard_degrees` and are filtered by memory fit.
"""

from __future__ import annotations

from collections.abc import Iterator

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.shards import shard_degrees
from airflow_fate.state.cluster_state import Snapshot


def degrees_for(
    stage: StageInfo, snap: Snapshot, cost: CostModel, node: int, bound: int | None = None
) -> tuple[int, ...]:
    """Shard degrees of ``stage`` that fit a GPU of ``node`` (at most ``bound``)."""
    count = snap.cluster.nodes[node].gpu_count
    hi = stage.max_shards if bound is None else max(stage.min_shards, min(stage.max_shards, bound))
    return tuple(k for k in shard_degrees(stage.min_shards, hi, count) if cost.fits(stage, node, k))


def smallest_degree(stage: StageInfo, snap: Snapshot, cost: CostModel, node: int) -> int | None:
    """The smallest shard degree of ``stage`` that fits ``node``, or None."""
    ks = degrees_for(stage, snap, cost, node)
    return ks[0] if ks else None


def aligned_blocks(node_gpus: tuple[int, ...], k: int) -> Iterator[tuple[int, ...]]:
    for i in range(0, len(node_gpus) - k + 1, k):
        yield node_gpus[i : i + k]


def earliest_group(snap: Snapshot, node_gpus: tuple[int, ...], k: int) -> tuple[int, ...]:
    """The k GPUs of a node that free up first (ties by index), in index order."""
    order = sorted(node_gpus, key=lambda g: (snap.gpus[g].busy_until, g))
    return tuple(sorted(order[:k]))


def groups_for(
    stage: StageInfo, snap: Snapshot, cost: CostModel, bound: int | None = None
) -> list[tuple[int, ...]]:
    """Every candidate GPU set of ``stage`` across the cluster, deduplicated, stable order."""
    out: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    for node, node_gpus in enumerate(snap.cluster.node_gpus):
        for k in degrees_for(stage, snap, cost, node, bound):
            if k == 1:
                for g in node_gpus:
                    out.append((g,))
                continue
            family = [*aligned_blocks(node_gpus, k), earliest_group(snap, node_gpus, k)]
            for g in node_gpus:
                for model, group, _ in snap.gpus[g].resident:
                    if model == stage.model and len(group) == k:
                        family.append(group)
            for group in family:
                if group not in seen:
                    seen.add(group)
                    out.append(group)
    return out
