"""The GPU map: every node's GPUs with resident models, prefix-KV entries and what runs.

Built from what the executor stored, nothing live is queried:

- nodes and GPUs from the cluster file the executor plans with (``[fate] cluster``), or,
  without one, from the node and GPU names that appear in the stored rows;
- residency and prefix KV from ``fate_residency`` / ``fate_prefix_kv`` (the planner's
  view, written whenever a stage starts or ends on a node);
- "running now" from open placements (``fate_placement`` rows without an end). A row
  stays open while its task process runs; a scheduler that dies leaves rows open until
  the next one closes them, so the page labels them as recorded, not as probed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from airflow_fate.executor.store import PlacementRow, PrefixRow, ResidencyRow
from airflow_fate.ui.colours import model_colour
from airflow_fate.ui.schemas import ClusterMap, Gpu, Node, PrefixEntry, Resident, Running

HOST_TIER = "host"


@dataclass(frozen=True, slots=True)
class NodeShape:
    """A node as the cluster file describes it."""

    name: str
    gpu_count: int
    gpu_type: str | None = None
    memory_gib: float | None = None


def shapes_from_rows(
    residency: Iterable[ResidencyRow],
    prefixes: Iterable[PrefixRow],
    placements: Iterable[PlacementRow],
) -> list[NodeShape]:
    """Nodes and GPU counts inferred from stored rows (when no cluster file is known)."""
    highest: dict[str, int] = {}
    for node, gpu in [
        *((r.node, r.gpu) for r in residency),
        *((r.node, r.gpu) for r in prefixes),
        *((p.node, g) for p in placements for g in p.gpus),
    ]:
        highest[node] = max(highest.get(node, -1), gpu)
    return [NodeShape(n, g + 1) for n, g in sorted(highest.items())]


def cluster_map(
    shapes: list[NodeShape],
    residency: list[ResidencyRow],
    prefixes: list[PrefixRow],
    open_placements: list[PlacementRow],
    readable: Callable[[str], bool],
    *,
    source: str,
    now: datetime,
) -> ClusterMap:
    """The map of ``shapes``; ``readable(dag_id)`` hides running tries of other DAGs."""
    running = _running_by_gpu(open_placements, readable)
    nodes = []
    models: set[str] = set()
    for shape in shapes:
        gpus = []
        for index in range(shape.gpu_count):
            resident = [
                _resident(r)
                for r in residency
                if r.node == shape.name and r.gpu == index and r.tier != HOST_TIER
            ]
            kv = [
                PrefixEntry(model=r.model, prefix_id=r.prefix_id, gib=r.gib, lru_rank=r.lru_rank)
                for r in prefixes
                if r.node == shape.name and r.gpu == index
            ]
            now_running = running.get((shape.name, index))
            colour = _gpu_colour(now_running, resident)
            models.update(r.model for r in resident)
            if now_running is not None:
                models.add(now_running.model)
            gpus.append(
                Gpu(
                    index=index, resident=resident, prefix_kv=kv, running=now_running, colour=colour
                )
            )
        host = [_resident(r) for r in residency if r.node == shape.name and r.tier == HOST_TIER]
        models.update(r.model for r in host)
        nodes.append(
            Node(
                name=shape.name,
                gpu_type=shape.gpu_type,
                memory_gib=shape.memory_gib,
                gpus=gpus,
                host_cache=host,
            )
        )
    legend = {m: model_colour(m) for m in sorted(models) if m}
    return ClusterMap(nodes=nodes, models=legend, source=source, generated=now)


def _resident(r: ResidencyRow) -> Resident:
    return Resident(
        model=r.model,
        tier=r.tier,
        shard_group=list(r.shard_group),
        last_used=r.last_used,
        colour=model_colour(r.model),
    )


def _running_by_gpu(
    rows: list[PlacementRow], readable: Callable[[str], bool]
) -> dict[tuple[str, int], Running]:
    out: dict[tuple[str, int], Running] = {}
    for p in sorted(rows, key=lambda r: r.start):
        if p.end is not None or not p.gpus:
            continue
        shown = readable(p.key.dag_id)
        item = Running(
            dag_id=p.key.dag_id if shown else None,
            run_id=p.key.run_id if shown else None,
            task_id=p.key.task_id if shown else None,
            map_index=p.key.map_index if shown else None,
            try_number=p.key.try_number if shown else None,
            model=p.model if shown else "",
            start=p.start,
            colour=model_colour(p.model if shown else ""),
        )
        for g in p.gpus:
            out[(p.node, g)] = item
    return out


def _gpu_colour(running: Running | None, resident: list[Resident]) -> str | None:
    if running is not None:
        return running.colour
    if resident:
        return max(resident, key=lambda r: r.last_used).colour
    return None
