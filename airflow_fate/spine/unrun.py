"""Why a run left stages unrun: the one-line message its `UnrunStagesError` carries.

A run ends with stages unrun when the event queue drains first. From the end state
every unrun stage is in one of three places, and the message counts each:

- **ready but never placed**: either no node has the GPUs its model needs
  (``min_shards`` to ``max_shards`` GPUs of one node, each with room for its share of
  weights plus KV; the loaders normally reject such a stage first), or the policy never
  placed a stage that fits (a liveness bug of the policy);
- **placed but never started**: its GPUs' queues stalled;
- **waiting**: a parent (or an earlier ancestor) is unrun.

The first two are causes; a few of them are named as ``workflow/stage`` with the reason.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.shards import memory_per_gpu_gib, shard_degrees
from airflow_fate.state.cluster_state import Snapshot, stage_label

NAMED = 3
"""Stages the message names; the rest are counted."""


def unrun_message(policy: str, snap: Snapshot, cost: CostModel) -> str:
    """One line: who left how many stages unrun, where they stopped, and why.

    Names the first few causes (ready or placed stages, not those waiting on them) and
    one reason per model among the causes, the first few models.

    Args:
        policy: the policy's name.
        snap: the cluster state at the end of the run.
        cost: the run's cost model (it says which shard degrees fit which node).
    """
    stages = snap.graph.stages
    unrun = [s for s in stages if s.uid not in snap.finished]
    ready = set(snap.frontier)
    unplaced = [s for s in unrun if s.uid in ready]
    stalled = [s for s in unrun if s.uid not in ready and s.uid in snap.placement]
    counts = [
        (len(unplaced), "ready but never placed"),
        (len(stalled), "placed but never started"),
        (len(unrun) - len(unplaced) - len(stalled), "waiting on those"),
    ]
    causes = [*unplaced, *stalled]
    names = ", ".join(stage_label(s) for s in causes[:NAMED])
    if len(causes) > NAMED:
        names += f" and {len(causes) - NAMED} more"
    reasons: dict[str, str] = {}
    for s in causes:
        key = s.model if s.uid in ready else stage_label(s)
        if key not in reasons and len(reasons) < NAMED:
            reasons[key] = _reason(s, snap, cost)
    where = ", ".join(f"{n} {what}" for n, what in counts if n)
    head = f"policy {policy!r} left {len(unrun)} of {len(stages)} stages unrun ({where})"
    return "; ".join([f"{head}: {names}" if names else head, *reasons.values()])


def _reason(stage: StageInfo, snap: Snapshot, cost: CostModel) -> str:
    gpus = snap.placement.get(stage.uid)
    if gpus is not None:
        node = snap.cluster.nodes[snap.cluster.gpus[gpus[0]].node].name
        return f"{stage_label(stage)} queued on GPUs {list(gpus)} of {node} but never started"
    fitting = {n: ks[0] for n, ks in enumerate(cost.degrees_by_node(stage)) if ks}
    if not fitting:
        return no_fit_reason(stage, snap.cluster, snap.catalog)
    k = min(fitting.values())
    types = sorted({snap.cluster.nodes[n].gpu_type for n, kn in fitting.items() if kn == k})
    need = memory_per_gpu_gib(snap.catalog.models[stage.model], stage.tokens, k)
    return (
        f"{stage.model} fits {k} x {'/'.join(types)} ({need:.1f} GiB each, "
        f"min_shards {stage.min_shards}) but the policy never placed it"
    )


def no_fit_reason(stage: StageInfo, cluster: Cluster, catalog: ModelCatalog) -> str:
    """Why no node of ``cluster`` can run ``stage``, with its least demanding layout.

    That layout is the fewest GPUs (within ``min_shards`` to ``max_shards``) whose
    per-GPU share fits some GPU type, or else the most GPUs, which need the least each.
    """
    model = catalog.models[stage.model]
    degrees = shard_degrees(stage.min_shards, stage.max_shards, stage.max_shards)
    usable = max(cluster.gpu_types[n.gpu_type].usable_gib for n in cluster.nodes)
    need = {k: memory_per_gpu_gib(model, stage.tokens, k) for k in degrees}
    k = next((k for k in degrees if need[k] <= usable), degrees[-1])
    most: dict[str, int] = {}
    for node in cluster.nodes:
        most[node.gpu_type] = max(most.get(node.gpu_type, 0), node.gpu_count)
    offer = ", ".join(
        f"{count} x {name} with {cluster.gpu_types[name].usable_gib:.1f} GiB usable"
        for name, count in sorted(most.items())
    )
    return (
        f"{stage.model} needs {k} GPU{'s' if k > 1 else ''} with {need[k]:.1f} GiB each "
        f"and no node has them (largest nodes: {offer})"
    )
