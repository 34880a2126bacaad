"""Candidate GPU sets for a stage: single GPUs and bounded shard groups inside one node.

Shard groups of k GPUs are drawn from three families, so the list stays short while it
still contains every group a sensible policy would pick:

- the aligned block (``[0..k)``, ``[k..2k)``, ... of a node) that frees first: the
  tensor-parallel layouts that share an NVLink switch / PCIe root and fragment least;
- the k GPUs of the node that free up first (earliest start);
- groups where the stage's model is already resident for exactly that layout (warm).

Single GPUs that the cost model cannot tell apart are collapsed (`distinct_singles`).

Degrees follow `shard_degrees` and are filtered by memory fit. A policy's bound on the
degree caps optional widening only (`capped_degrees`): it never takes away a stage's
smallest fitting layout, so every stage that fits a node is offered a group there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.state.cluster_state import Snapshot


def smallest_degree(stage: StageInfo, snap: Snapshot, cost: CostModel, node: int) -> int | None:
    """The smallest shard degree of ``stage`` that fits ``node``, or None."""
    ks = cost.degrees(stage, node)
    return ks[0] if ks else None


def capped_degrees(
    stage: StageInfo, cost: CostModel, node: int, bound: int | None = None
) -> tuple[int, ...]:
    """Fitting shard degrees of ``stage`` on ``node``, widening capped at ``bound``.

    The bound caps optional widening, never the stage's need: where no fitting degree is
    within it (``min_shards`` above it, or the model needs more GPUs of this node's type
    than it allows) the smallest fitting degree remains. Empty only when nothing fits.
    """
    return cost.degrees_by_node(stage, bound)[node]


def aligned_blocks(node_gpus: tuple[int, ...], k: int) -> Iterator[tuple[int, ...]]:
    for i in range(0, len(node_gpus) - k + 1, k):
        yield node_gpus[i : i + k]


def earliest_group(snap: Snapshot, node: int, k: int) -> tuple[int, ...]:
    """The k GPUs of a node that free up first (ties by index), in index order."""
    return tuple(sorted(snap.wait_order[node][:k]))


def distinct_singles(stage: StageInfo, snap: Snapshot, node: int) -> list[tuple[int, ...]]:
    """Single GPUs of a node, one per class of what the cost model can tell apart.

    Inside a node, a single-GPU estimate depends on the GPU only through its wait and
    three facts: is the stage's model there (resident or queued), is its prefix KV there,
    does it hold a parent's output. GPUs sharing those facts differ only in wait, so the
    earliest-free one (lowest index on ties) dominates the rest of its class for every
    earliest-finish criterion; keeping one per class makes planning cost independent of
    node size. A fourth fact keeps packing possible: whether the GPU's aligned partner
    (the other GPU of its pair) is busy, so a stage can take a GPU that leaves idle pairs
    intact for sharded stages.
    """
    parents = {g for p in stage.parents for g in snap.placement.get(p, ())}
    warm = snap.model_groups(stage.model)
    prefixed = snap.prefix_gpus((stage.model, stage.prefix_id)) if stage.prefix_id else frozenset()
    seen: set[tuple[bool, bool, bool, bool]] = set()
    out: list[int] = []
    node_gpus = snap.cluster.node_gpus[node]
    first = node_gpus[0]
    now = snap.now
    for g in snap.wait_order[node]:
        partner = node_gpus[((g - first) ^ 1)] if (g - first) ^ 1 < len(node_gpus) else g
        cls = ((g,) in warm, g in prefixed, g in parents, snap.gpus[partner].busy_until > now)
        if cls not in seen:
            seen.add(cls)
            out.append(g)
            if len(seen) == 16:
                break
    return [(g,) for g in sorted(out)]


def groups_for(
    stage: StageInfo,
    snap: Snapshot,
    cost: CostModel,
    bound: int | None = None,
    nodes: Iterable[int] | None = None,
) -> list[tuple[int, ...]]:
    """Candidate GPU sets of ``stage`` (on ``nodes``, default all), deduplicated, stable.

    ``bound`` caps the shard degree above the stage's smallest fitting one per node
    (`capped_degrees`).

    Shard groups per node and degree: the groups that hold the model, the aligned block
    that frees first and the k earliest-free GPUs; other aligned blocks differ from the
    first-free one only by a later wait.
    """
    out: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    node_ids = range(len(snap.cluster.nodes)) if nodes is None else nodes
    for node in node_ids:
        node_gpus = snap.cluster.node_gpus[node]
        for k in capped_degrees(stage, cost, node, bound):
            if k == 1:
                out.extend(distinct_singles(stage, snap, node))
                continue
            blocks = list(aligned_blocks(node_gpus, k))
            first_block = min(blocks, key=lambda b: (snap.free_at(b), b))
            family = [first_block, earliest_group(snap, node, k)]
            for group in snap.model_groups(stage.model):
                if len(group) == k and group[0] in node_gpus:
                    family.append(group)
            for group in family:
                if group not in seen:
                    seen.add(group)
                    out.append(group)
    return out
