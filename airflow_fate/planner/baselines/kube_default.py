"""KubeDefault: what a stock Kubernetes GPU pool does with stage pods.

Pods are bound in FIFO order, only to GPUs that are free now (the device plugin
allocates idle devices; a pod that fits nowhere stays Pending and later pods may still
bind). Node choice follows kube-scheduler's default ``NodeResourcesFit`` strategy
``LeastAllocated``: the node with the largest free GPU fraction after binding; ties go
to the first node. Within the node the device plugin hands out the lowest-index free
GPUs. The pod requests the smallest GPU count that fits the model on that node's GPU type
(a nodeAffinity on GPU Feature Discovery labels). Blind to models, outputs and prefixes.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import smallest_degree
from airflow_fate.planner.sequential import fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot


def idle(snap: Snapshot, g: int) -> bool:
    """A GPU with nothing running or queued (and not expected busy)."""
    st = snap.gpus[g]
    return st.running is None and not st.pending and st.busy_until <= snap.now


class KubeDefault:
    name = "kube-default"

    def __init__(self, seed: int = 0) -> None:
        pass

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            best: tuple[int, ...] | None = None
            best_score = -1.0
            for node, node_gpus in enumerate(s.cluster.node_gpus):
                k = smallest_degree(stage, s, cost, node)
                free = [g for g in node_gpus if idle(s, g)]
                if k is None or len(free) < k:
                    continue
                score = (len(free) - k) / len(node_gpus)
                if score > best_score:
                    best, best_score = tuple(free[:k]), score
            return best

        return place_in_order(snap, cost, fifo_order(snap), choose)
