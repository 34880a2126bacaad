"""Rebuilding the planner's state after a scheduler restart, from the ``fate_*`` tables.

- residency: models the store says a GPU held are preloaded into `ClusterState`, but only
  for GPUs whose device worker survived the restart (otherwise the memory is gone);
- finished placements of a DAG run are replayed when the run is first met again, so its
  children still see where their parents' outputs live;
- running tries Airflow asks us to adopt are taken over when their process still runs
  (their GPUs are marked busy again); rows of tries that ended while no scheduler ran
  are closed with the state the database holds.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from airflow.models.dagbag import DBDagBag

from airflow_fate.executor import airflow_db
from airflow_fate.executor.layout import RunLayout
from airflow_fate.executor.store import PlacementRow, PrefixRow, ResidencyRow, utcnow
from airflow_fate.launch.processes import TaskProcesses
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.metadata import StageMetadata

if TYPE_CHECKING:
    from airflow_fate.executor.runtime import FateRuntime

TERMINAL = {"success", "failed", "skipped", "upstream_failed", "removed", "up_for_retry"}
CPU_NODE = "cpu"

ResidencyKey = tuple[str, int, str]
"""``(node name, node-local GPU, model)``."""


class Restorer:
    """Restores state for one executor run; also tracks when each GPU last used a model."""

    def __init__(self, rt: FateRuntime, layout: Callable[[str, str], RunLayout]) -> None:
        self.rt = rt
        self.dag_bag = DBDagBag()
        self.last_used: dict[ResidencyKey, datetime] = {}
        self.abandoned: list[TaskKey] = []
        self._layout = layout

    def locate(self, node: str, local: Sequence[int]) -> tuple[int, ...] | None:
        """Global GPU indices of ``node``'s GPUs ``local``; None if the cluster has no such."""
        names = [n.name for n in self.rt.cluster.nodes]
        if node not in names:
            return None
        gpus = self.rt.cluster.node_gpus[names.index(node)]
        if any(not 0 <= i < len(gpus) for i in local) or not local:
            return None
        return tuple(gpus[i] for i in local)

    def residency(
        self, live: set[int], held: Mapping[tuple[int, ...], Sequence[str]] | None = None
    ) -> int:
        """Preload GPU residency on devices that kept it; how many (model, group) pairs.

        ``held`` is what the surviving workers themselves report (worker pods' agents):
        for each GPU set it names it is the truth, and the store's rows only supply when
        each model was last used; a model the store lists but the worker no longer holds
        is dropped, and the state learns each such worker's exact GPU set (a shard group's
        worker, where it started with single-GPU ones). For live devices it does not name
        (a worker not asked yet), and without it, the store's rows stand.
        """
        for worker_gpus in held or {}:
            if set(worker_gpus) <= live:  # its exact set, even when it holds nothing yet
                self.rt.planner.adopt_worker(worker_gpus)
        done: set[tuple[str, tuple[int, ...]]] = set()
        for row in self.rt.store.residency():
            if row.tier != "gpu":
                continue
            group = self.locate(row.node, row.shard_group)
            if group is None or not set(group) <= live:
                continue
            if held is not None and group in held and row.model not in held[group]:
                continue  # the worker no longer holds it
            self.last_used[(row.node, row.gpu, row.model)] = row.last_used
            if (row.model, group) not in done:
                done.add((row.model, group))
                self.rt.planner.preload(row.model, group)
        for group, models in (held or {}).items():
            for model in models:
                if (model, group) not in done and set(group) <= live:
                    done.add((model, group))
                    self.rt.planner.preload(model, group)
        return len(done)

    def touch(self, node: str, local: Sequence[int], model: str) -> None:
        now = utcnow()
        for g in local:
            self.last_used[(node, g, model)] = now

    def close_finished_rows(self, tracked: Container[TaskKey] = ()) -> int:
        """Close open rows of tries nobody tracks once the database says they ended.

        Such a try ran while no scheduler watched it, or was left to a restart that could
        not adopt it; also closes rows of tries `adopt` gave up. Returns how many closed.
        """
        closed = 0
        for key in self.abandoned:
            self.rt.store.record_end(key, "abandoned", utcnow(), 0.0, None)
            closed += 1
        self.abandoned = []
        for row in self.rt.store.placements(open_only=True):
            if row.key in tracked:
                continue
            outcome = airflow_db.read_outcome(self.rt.airflow_engine, row.key)
            if outcome.state in TERMINAL:
                end = outcome.end or utcnow()
                run_s = max((end - row.start).total_seconds(), 0.0)
                self.rt.store.record_end(row.key, outcome.state, end, run_s, outcome.measured)
                closed += 1
        return closed

    def replay_run(self, dag_id: str, run_id: str, now: float) -> int:
        """Replay a run's finished stage placements into the state; how many."""
        replayed = 0
        for row in self.rt.store.placements_of_run(dag_id, run_id):
            if row.end is None or row.node == CPU_NODE:
                continue
            gpus = self.locate(row.node, row.gpus)
            if gpus is not None and self.rt.planner.replay(row.key, gpus, now, row.run_s or 0.0):
                replayed += 1
        return replayed

    def adopt(
        self, keys: Sequence[TaskKey], now: float, *, give_up: bool = True
    ) -> dict[TaskKey, tuple[str, datetime]]:
        """Take over the live processes of ``keys``; key -> (where, start) of each adopted.

        With ``give_up`` the open rows of keys not adopted are closed as abandoned at the
        next reconcile (Airflow resets those tries); without it they stay open until
        Airflow's task states close them.
        """
        wanted = set(keys)
        rows = {r.key: r for r in self.rt.store.placements(open_only=True) if r.key in wanted}
        stage_keys = [k for k, r in rows.items() if r.node != CPU_NODE]
        cpu_keys = [k for k, r in rows.items() if r.node == CPU_NODE]
        out: dict[TaskKey, tuple[str, datetime]] = {}
        for key in self.rt.launcher.adopt(stage_keys):
            row = rows[key]
            self._adopt_stage(row, now)
            out[key] = (f"{row.node}:{','.join(map(str, row.gpus))}", row.start)
        cpu: TaskProcesses = self.rt.cpu
        for key in cpu.adopt(cpu_keys):
            out[key] = (CPU_NODE, rows[key].start)
        # no writes here: Airflow calls this inside its own transaction (SQLite would
        # block on it); rows of tries not adopted are closed at the next heartbeat
        if give_up:
            self.abandoned.extend(k for k in rows if k not in out)
        return out

    def _adopt_stage(self, row: PlacementRow, now: float) -> None:
        gpus = self.locate(row.node, row.gpus)
        if gpus is None:
            return
        layout = self._layout(row.key.dag_id, row.key.run_id)
        metadata = layout.stages.get(row.key.task_id) or StageMetadata(
            model=row.model, input_tokens=1
        )
        if metadata.model in self.rt.catalog.models:
            self.rt.planner.adopt(row.key, metadata, gpus, now)


def residency_rows(
    rt: FateRuntime, node: int, last_used: dict[ResidencyKey, datetime]
) -> list[ResidencyRow]:
    """What ``node``'s GPUs and host cache hold now, per the planner's state."""
    name = rt.cluster.nodes[node].name
    now = utcnow()
    rows: list[ResidencyRow] = []
    for g in rt.cluster.node_gpus[node]:
        local = rt.cluster.gpus[g].local
        for model, group, _ in rt.planner.state.gpu(g).resident:
            rows.append(
                ResidencyRow(
                    node=name,
                    gpu=local,
                    model=model,
                    tier="gpu",
                    shard_group=tuple(rt.cluster.gpus[x].local for x in group),
                    last_used=last_used.get((name, local, model), now),
                )
            )
    for model, _ in rt.planner.state.node(node).host_cache:
        rows.append(
            ResidencyRow(name, -1, model, "host", (), last_used.get((name, -1, model), now))
        )
    return rows


def prefix_rows(rt: FateRuntime, node: int) -> list[PrefixRow]:
    """The prefix-KV entries ``node``'s GPUs hold now, per the planner's state (for the UI)."""
    name = rt.cluster.nodes[node].name
    now = utcnow()
    return [
        PrefixRow(name, rt.cluster.gpus[g].local, model, prefix_id, gib, rank, now)
        for g in rt.cluster.node_gpus[node]
        for rank, ((model, prefix_id), gib) in enumerate(rt.planner.state.gpu(g).prefix_kv)
    ]
