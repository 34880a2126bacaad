"""What the near future needs: descendants within the horizon and demand indexes.

Built once per decision epoch from the snapshot. ``near`` maps every unplaced stage that
matters (the frontier, hop 0, and descendants of frontier stages within ``horizon`` hops)
to its discount: ``hop_discount ** (hop - 1)`` for descendants (a child counts fully: it
can follow its parent on the same GPU), 1 for frontier stages. Demand indexes group these
stages by model, by prefix and by whether they need a shard group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_fate.cost.estimator import CostModel
from airflow_fate.state.cluster_state import Snapshot


@dataclass
class Lookahead:
    """Per-epoch view of the stages the planner should keep state for."""

    near: dict[int, float] = field(default_factory=dict)
    below: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    by_model: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    by_prefix: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)
    large: list[tuple[int, float, int]] = field(default_factory=list)
    projected: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    """Per model: observed stage arrival rate (/s), mean warm run (s), an example stage."""


def build_lookahead(
    snap: Snapshot, cost: CostModel, horizon: int, hop_discount: float
) -> Lookahead:
    """Collect the frontier's descendants within ``horizon`` hops and index them."""
    out = Lookahead()
    stages = snap.graph.stages
    placed = snap.placement
    for uid in snap.frontier:
        out.near[uid] = 1.0
        below: list[tuple[int, float]] = []
        level = [uid]
        for hop in range(1, horizon + 1):
            nxt: list[int] = []
            disc = hop_discount ** (hop - 1)
            for u in level:
                for c in stages[u].children:
                    if c in placed:
                        continue
                    below.append((c, disc))
                    nxt.append(c)
                    if out.near.get(c, 0.0) < disc:
                        out.near[c] = disc
            level = nxt
        out.below[uid] = below
    for uid, disc in out.near.items():
        s = stages[uid]
        out.by_model.setdefault(s.model, []).append((uid, disc))
        if s.prefix_id:
            out.by_prefix.setdefault((s.model, s.prefix_id), []).append((uid, disc))
        smallest = min((ks[0] for ks in cost.degrees_by_node(s) if ks), default=1)
        if smallest >= 2:
            out.large.append((uid, disc, smallest))
    return out
