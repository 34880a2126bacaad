"""The ``fate_*`` tables in the Airflow metadata database: placements and residency.

``fate_placement`` keeps one row per launched task-instance try: where it ran and why
(policy, node, GPUs, predicted breakdown, future terms, runner-up), when it started and
ended, its final state and the measured breakdown the stage reported. ``fate_residency``
keeps what each GPU holds (model, shard group, tier, last use) as the executor's
`ClusterState` sees it. A restarted scheduler rebuilds its state from both.
``fate_prefix_kv`` keeps the prefix-KV entries each GPU holds in that same view (model,
prefix id, size, LRU rank); only the UI reads it (a restarted device worker has lost its
KV, so restoring it would be wrong). Adding it did not change the schema version: the
table is additive and created by ``ensure_schema`` like the others.

The plugin creates and versions its own tables (``fate_schema``: one row with the schema
version) instead of joining Airflow's alembic history, so installing or removing the
plugin never touches Airflow's migrations. SQLAlchemy Core only; works on SQLite and
PostgreSQL. No Airflow imports: the executor passes an engine in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    inspect,
    select,
    update,
)

from airflow_fate.launch.types import TaskKey

SCHEMA_VERSION = 1

metadata = MetaData()

fate_schema = Table(
    "fate_schema",
    metadata,
    Column("component", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
)

fate_placement = Table(
    "fate_placement",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("map_index", Integer, nullable=False, default=-1),
    Column("try_number", Integer, nullable=False),
    Column("policy", String(64), nullable=False),
    Column("launcher", String(32), nullable=False),
    Column("node", String(250), nullable=False),
    Column("gpus", JSON, nullable=False),
    Column("model", String(250), nullable=False),
    Column("predicted", JSON, nullable=False),
    Column("score", Float, nullable=True),
    Column("future_terms", JSON, nullable=True),
    Column("runner_up", JSON, nullable=True),
    Column("runner_up_score", Float, nullable=True),
    Column("state", String(32), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=True),
    Column("run_s", Float, nullable=True),
    Column("measured", JSON, nullable=True),
    UniqueConstraint("dag_id", "task_id", "run_id", "map_index", "try_number", name="fate_ti"),
)

fate_residency = Table(
    "fate_residency",
    metadata,
    Column("node", String(250), primary_key=True),
    Column("gpu", Integer, primary_key=True),
    Column("model", String(250), primary_key=True),
    Column("tier", String(16), primary_key=True),
    Column("shard_group", JSON, nullable=False),
    Column("last_used", DateTime(timezone=True), nullable=False),
)

fate_prefix_kv = Table(
    "fate_prefix_kv",
    metadata,
    Column("node", String(250), primary_key=True),
    Column("gpu", Integer, primary_key=True),
    Column("model", String(250), primary_key=True),
    Column("prefix_id", String(250), primary_key=True),
    Column("gib", Float, nullable=False),
    Column("lru_rank", Integer, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)

LAUNCHED = "launched"
"""A placement whose outcome is not known yet (the task may still run)."""


@dataclass(frozen=True, slots=True)
class PlacementRow:
    """One launched try, as stored (times are timezone-aware UTC)."""

    key: TaskKey
    policy: str
    node: str
    gpus: tuple[int, ...]
    model: str
    predicted: dict[str, float]
    state: str
    pid: int | None
    start: datetime
    end: datetime | None
    run_s: float | None
    measured: dict[str, Any] | None
    score: float | None = None
    future_terms: dict[str, float] | None = None
    runner_up: tuple[int, ...] | None = None
    runner_up_score: float | None = None
    launcher: str = "local"
    runner_up_node: str | None = None
    runner_up_predicted: dict[str, float] | None = None
    runner_up_terms: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class ResidencyRow:
    """A model held by a GPU (``tier`` ``gpu``) with the node-local shard group."""

    node: str
    gpu: int
    model: str
    tier: str
    shard_group: tuple[int, ...]
    last_used: datetime


@dataclass(frozen=True, slots=True)
class PrefixRow:
    """A prefix-KV entry ``(model, prefix_id)`` held by a GPU, ``gib`` per GPU.

    ``lru_rank`` 0 is the entry evicted first; ``updated`` is when the executor wrote it.
    """

    node: str
    gpu: int
    model: str
    prefix_id: str
    gib: float
    lru_rank: int
    updated: datetime


class SchemaError(RuntimeError):
    """The ``fate_*`` tables were written by a newer plugin than this one."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class FateStore:
    """Reads and writes the ``fate_*`` tables through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- schema ----------------------------------------------------------------------

    def ensure_schema(self) -> int:
        """Create missing tables and record the schema version; returns the version.

        Raises:
            SchemaError: when the database holds a newer schema than this plugin knows.
        """
        metadata.create_all(self.engine, checkfirst=True)
        with self.engine.begin() as conn:
            found = conn.execute(
                select(fate_schema.c.version).where(fate_schema.c.component == "fate")
            ).scalar_one_or_none()
            if found is None:
                conn.execute(insert(fate_schema).values(component="fate", version=SCHEMA_VERSION))
                return SCHEMA_VERSION
            if found > SCHEMA_VERSION:
                raise SchemaError(
                    f"fate_* tables have schema version {found}; this airflow-fate knows "
                    f"{SCHEMA_VERSION}: upgrade airflow-fate"
                )
            if found < SCHEMA_VERSION:  # no older versions exist yet; future upgrades go here
                conn.execute(
                    update(fate_schema)
                    .where(fate_schema.c.component == "fate")
                    .values(version=SCHEMA_VERSION)
                )
        return SCHEMA_VERSION

    def tables(self) -> list[str]:
        return sorted(n for n in inspect(self.engine).get_table_names() if n.startswith("fate_"))

    # -- placements ------------------------------------------------------------------

    def record_launch(self, row: PlacementRow) -> None:
        """Insert the try's placement (replacing an earlier row of the same try)."""
        values = _placement_values(row)
        with self.engine.begin() as conn:
            conn.execute(delete(fate_placement).where(*_key_filter(row.key)))
            conn.execute(insert(fate_placement).values(**values))

    def record_pid(self, key: TaskKey, pid: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(fate_placement).where(*_key_filter(key)).values(pid=pid))

    def record_end(
        self,
        key: TaskKey,
        state: str,
        end: datetime,
        run_s: float,
        measured: dict[str, Any] | None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(fate_placement)
                .where(*_key_filter(key))
                .values(state=state, end=end, run_s=run_s, measured=measured)
            )

    def placements(
        self, dag_ids: Sequence[str] | None = None, *, open_only: bool = False
    ) -> list[PlacementRow]:
        """Stored placements in start order (optionally of some DAGs, or still open)."""
        query = select(fate_placement).order_by(fate_placement.c.start, fate_placement.c.id)
        if dag_ids is not None:
            query = query.where(fate_placement.c.dag_id.in_(list(dag_ids)))
        if open_only:
            query = query.where(fate_placement.c.end.is_(None))
        with self.engine.connect() as conn:
            return [_placement_row(r._mapping) for r in conn.execute(query)]

    def placements_between(self, since: datetime, until: datetime) -> list[PlacementRow]:
        """Placements launched before ``until`` that had not ended by ``since`` (start order)."""
        c = fate_placement.c
        query = (
            select(fate_placement)
            .where(c.start < until, (c.end.is_(None)) | (c.end > since))
            .order_by(c.start, c.id)
        )
        with self.engine.connect() as conn:
            return [_placement_row(r._mapping) for r in conn.execute(query)]

    def placements_of_run(self, dag_id: str, run_id: str) -> list[PlacementRow]:
        query = (
            select(fate_placement)
            .where(fate_placement.c.dag_id == dag_id, fate_placement.c.run_id == run_id)
            .order_by(fate_placement.c.start, fate_placement.c.id)
        )
        with self.engine.connect() as conn:
            return [_placement_row(r._mapping) for r in conn.execute(query)]

    # -- residency -------------------------------------------------------------------

    def replace_residency(self, node: str, rows: Iterable[ResidencyRow]) -> None:
        """Set what ``node``'s GPUs hold (all of its rows at once)."""
        values = [
            {
                "node": r.node,
                "gpu": r.gpu,
                "model": r.model,
                "tier": r.tier,
                "shard_group": list(r.shard_group),
                "last_used": r.last_used,
            }
            for r in rows
        ]
        self._replace_node_rows(fate_residency, node, values)

    def _replace_node_rows(self, table: Table, node: str, values: list[dict[str, Any]]) -> None:
        """Replace every row of ``node`` in ``table`` in one transaction (readers never
        see a node half-written)."""
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.node == node))
            if values:
                conn.execute(insert(table), values)

    def residency(self) -> list[ResidencyRow]:
        query = select(fate_residency).order_by(
            fate_residency.c.node, fate_residency.c.gpu, fate_residency.c.last_used
        )
        with self.engine.connect() as conn:
            return [
                ResidencyRow(
                    node=r.node,
                    gpu=r.gpu,
                    model=r.model,
                    tier=r.tier,
                    shard_group=tuple(_json(r.shard_group)),
                    last_used=_aware(r.last_used),
                )
                for r in conn.execute(query)
            ]

    # -- prefix KV -------------------------------------------------------------------

    def replace_prefix_kv(self, node: str, rows: Iterable[PrefixRow]) -> None:
        """Set the prefix-KV entries of ``node``'s GPUs (all of its rows at once)."""
        values = [
            {
                "node": r.node,
                "gpu": r.gpu,
                "model": r.model,
                "prefix_id": r.prefix_id,
                "gib": r.gib,
                "lru_rank": r.lru_rank,
                "updated": r.updated,
            }
            for r in rows
        ]
        self._replace_node_rows(fate_prefix_kv, node, values)

    def prefix_kv(self) -> list[PrefixRow]:
        """Every stored prefix-KV entry, by node, GPU and LRU rank."""
        c = fate_prefix_kv.c
        query = select(fate_prefix_kv).order_by(c.node, c.gpu, c.lru_rank)
        with self.engine.connect() as conn:
            return [
                PrefixRow(
                    node=r.node,
                    gpu=r.gpu,
                    model=r.model,
                    prefix_id=r.prefix_id,
                    gib=r.gib,
                    lru_rank=r.lru_rank,
                    updated=_aware(r.updated),
                )
                for r in conn.execute(query)
            ]


def _key_filter(key: TaskKey) -> tuple[Any, ...]:
    c = fate_placement.c
    return (
        c.dag_id == key.dag_id,
        c.task_id == key.task_id,
        c.run_id == key.run_id,
        c.map_index == key.map_index,
        c.try_number == key.try_number,
    )


def _placement_values(row: PlacementRow) -> dict[str, Any]:
    return {
        "dag_id": row.key.dag_id,
        "task_id": row.key.task_id,
        "run_id": row.key.run_id,
        "map_index": row.key.map_index,
        "try_number": row.key.try_number,
        "policy": row.policy,
        "launcher": row.launcher,
        "node": row.node,
        "gpus": list(row.gpus),
        "model": row.model,
        "predicted": row.predicted,
        "score": row.score,
        "future_terms": row.future_terms,
        "runner_up": _runner_up_doc(row),
        "runner_up_score": row.runner_up_score,
        "state": row.state,
        "pid": row.pid,
        "start": row.start,
        "end": row.end,
        "run_s": row.run_s,
        "measured": row.measured,
    }


def _runner_up_doc(row: PlacementRow) -> dict[str, Any] | None:
    """The ``runner_up`` column: the next-best candidate's node, GPUs, breakdown, terms."""
    if row.runner_up is None:
        return None
    return {
        "node": row.runner_up_node,
        "gpus": list(row.runner_up),
        "predicted": row.runner_up_predicted,
        "future_terms": row.runner_up_terms,
    }


def _placement_row(m: Any) -> PlacementRow:
    runner_up = _json(m["runner_up"])
    if isinstance(runner_up, list):  # rows written before the runner-up's details were kept
        runner_up = {"gpus": runner_up}
    runner_up = runner_up or {}
    return PlacementRow(
        key=TaskKey(
            dag_id=m["dag_id"],
            task_id=m["task_id"],
            run_id=m["run_id"],
            try_number=m["try_number"],
            map_index=m["map_index"],
        ),
        policy=m["policy"],
        node=m["node"],
        gpus=tuple(_json(m["gpus"])),
        model=m["model"],
        predicted=_json(m["predicted"]),
        state=m["state"],
        pid=m["pid"],
        start=_aware(m["start"]),
        end=_aware(m["end"]) if m["end"] is not None else None,
        run_s=m["run_s"],
        measured=_json(m["measured"]),
        score=m["score"],
        future_terms=_json(m["future_terms"]),
        runner_up=tuple(runner_up["gpus"]) if "gpus" in runner_up else None,
        runner_up_score=m["runner_up_score"],
        launcher=m["launcher"],
        runner_up_node=runner_up.get("node"),
        runner_up_predicted=runner_up.get("predicted"),
        runner_up_terms=runner_up.get("future_terms"),
    )


def _json(value: Any) -> Any:
    """JSON columns come back decoded, except from some drivers as text."""
    return json.loads(value) if isinstance(value, str) else value


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every time stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
