"""Where the monitor reads from, inside Airflow's API server.

- The ``fate_*`` tables through `FateStore`: on ``[fate] store_conn`` when set (as the
  executor does), else on the engine Airflow's API server already configured for its
  metadata database, so no second pool is opened.
- The node and GPU list from ``[fate] cluster`` when the API server can read that file
  (it is the same file the executor plans with); otherwise the map is inferred from the
  stored rows and says so.

The monitor only reads: it never creates the tables. Before the executor's first start
they do not exist, and the monitor shows an empty cluster rather than an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from airflow import settings
from airflow.configuration import conf
from sqlalchemy import Engine, create_engine, inspect

from airflow_fate.domain.loaders import load_cluster
from airflow_fate.errors import InputError
from airflow_fate.executor.store import FateStore, PlacementRow, PrefixRow, ResidencyRow
from airflow_fate.ui.cluster_map import NodeShape

log = logging.getLogger(__name__)

SECTION = "fate"
REQUIRED_TABLES = frozenset({"fate_placement", "fate_residency"})
ALL_TABLES = REQUIRED_TABLES | {"fate_prefix_kv"}
"""``fate_prefix_kv`` came later: an older executor's database lacks it until it restarts."""


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything the GPU map needs, read in one go."""

    residency: list[ResidencyRow]
    prefixes: list[PrefixRow]
    open_placements: list[PlacementRow]


class MonitorSource:
    """Read access to the ``fate_*`` tables and the cluster file."""

    def __init__(self, engine: Engine, cluster_file: Path | None) -> None:
        self.store = FateStore(engine)
        self.cluster_file = cluster_file
        self._tables: set[str] = set()

    def ready(self) -> bool:
        """Whether the executor has created the tables (checked until they all exist)."""
        if not self._tables >= ALL_TABLES:
            self._tables = set(inspect(self.store.engine).get_table_names())
        return self._tables >= REQUIRED_TABLES

    def run_placements(self, dag_id: str, run_id: str) -> list[PlacementRow]:
        return self.store.placements_of_run(dag_id, run_id) if self.ready() else []

    def state(self) -> StoredState:
        if not self.ready():
            return StoredState([], [], [])
        prefixes = self.store.prefix_kv() if "fate_prefix_kv" in self._tables else []
        return StoredState(
            residency=self.store.residency(),
            prefixes=prefixes,
            open_placements=self.store.placements(open_only=True),
        )

    def shapes(self) -> list[NodeShape] | None:
        """Nodes from the cluster file, or None when there is no readable one."""
        if self.cluster_file is None:
            return None
        try:
            cluster = load_cluster(self.cluster_file)
        except InputError as exc:
            log.warning("FATE monitor: cannot read [fate] cluster: %s", exc)
            return None
        return [
            NodeShape(
                name=n.name,
                gpu_count=n.gpu_count,
                gpu_type=n.gpu_type,
                memory_gib=cluster.gpu_types[n.gpu_type].memory_gib,
            )
            for n in cluster.nodes
        ]


def now() -> datetime:
    return datetime.now(UTC)


@cache
def monitor_source() -> MonitorSource:
    """The API server's one `MonitorSource` (built on first use, after Airflow's ORM)."""
    store_conn = (conf.get(SECTION, "store_conn", fallback="") or "").strip()
    cluster = (conf.get(SECTION, "cluster", fallback="") or "").strip()
    engine: Engine | None
    if store_conn:
        args = {"timeout": 30} if store_conn.startswith("sqlite") else {}
        engine = create_engine(store_conn, connect_args=args, pool_pre_ping=True)
    else:
        engine = settings.engine
    if engine is None:
        raise RuntimeError("Airflow's ORM is not configured in this process")
    return MonitorSource(engine, Path(cluster) if cluster else None)
