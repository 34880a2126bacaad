"""The ``fate_*`` tables on SQLite and PostgreSQL: schema versioning and round trips."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, update

from airflow_fate.executor.store import (
    LAUNCHED,
    SCHEMA_VERSION,
    FateStore,
    PlacementRow,
    PrefixRow,
    ResidencyRow,
    SchemaError,
    fate_placement,
    fate_schema,
)
from tests.pg import fresh_database
from tests.unit.executor.conftest import key

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'meta.db'}")
        yield eng
        eng.dispose()
    else:
        with fresh_database("fate_store") as url:
            eng = create_engine(url)
            yield eng
            eng.dispose()


def _row(task: str = "answer", **kw: object) -> PlacementRow:
    fields: dict[str, object] = {
        "key": key(task),
        "policy": "fate",
        "node": "n0",
        "gpus": (1,),
        "model": "small-lm",
        "predicted": {"wait": 0.0, "load": 2.5, "input": 0.0, "prefill": 0.1, "decode": 0.2},
        "state": LAUNCHED,
        "pid": None,
        "start": T0,
        "end": None,
        "run_s": None,
        "measured": None,
        "score": 3.0,
        "future_terms": {"residency": -1.5},
        "runner_up": (0,),
        "runner_up_score": 4.0,
    }
    fields.update(kw)
    return PlacementRow(**fields)  # type: ignore[arg-type]


def test_schema_is_created_once_and_versioned(engine: Engine) -> None:
    store = FateStore(engine)
    assert store.ensure_schema() == SCHEMA_VERSION
    assert store.ensure_schema() == SCHEMA_VERSION
    assert store.tables() == [
        "fate_placement",
        "fate_prefix_kv",
        "fate_residency",
        "fate_schema",
    ]
    with engine.begin() as conn:
        conn.execute(update(fate_schema).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(SchemaError, match="upgrade airflow-fate"):
        store.ensure_schema()


def test_placement_round_trip_and_end(engine: Engine) -> None:
    store = FateStore(engine)
    store.ensure_schema()
    store.record_launch(_row())
    store.record_launch(_row("judge", start=T0 + timedelta(seconds=5)))
    store.record_pid(key("answer"), 4242)
    [open_a, open_j] = store.placements(open_only=True)
    assert open_a.pid == 4242 and open_a.runner_up == (0,) and open_a.future_terms
    assert open_a.start == T0 and open_j.start > open_a.start
    measured = {"load_s": 0.0, "model_warm": True}
    store.record_end(key("answer"), "success", T0 + timedelta(seconds=3), 3.0, measured)
    [done, still] = store.placements()
    assert (done.state, done.run_s, done.measured, done.end) == (
        "success",
        3.0,
        measured,
        T0 + timedelta(seconds=3),
    )
    assert [r.key.task_id for r in store.placements(open_only=True)] == ["judge"]
    assert still.end is None
    assert [r.key.task_id for r in store.placements_of_run("d", "r1")] == ["answer", "judge"]
    store.record_launch(_row())  # the same try launched again replaces its row
    assert len(store.placements()) == 2


def test_residency_is_replaced_per_node(engine: Engine) -> None:
    store = FateStore(engine)
    store.ensure_schema()
    store.replace_residency("n0", [ResidencyRow("n0", 0, "small-lm", "gpu", (0,), T0)])
    store.replace_residency("n1", [ResidencyRow("n1", 1, "mid-lm", "gpu", (0, 1), T0)])
    store.replace_residency(
        "n0",
        [
            ResidencyRow("n0", 1, "embed", "gpu", (1,), T0),
            ResidencyRow("n0", -1, "embed", "host", (), T0 + timedelta(seconds=1)),
        ],
    )
    rows = store.residency()
    assert [(r.node, r.gpu, r.model, r.tier) for r in rows] == [
        ("n0", -1, "embed", "host"),
        ("n0", 1, "embed", "gpu"),
        ("n1", 1, "mid-lm", "gpu"),
    ]
    assert rows[2].shard_group == (0, 1) and rows[2].last_used == T0


def test_prefix_kv_is_replaced_per_node_in_lru_order(engine: Engine) -> None:
    store = FateStore(engine)
    store.ensure_schema()
    store.replace_prefix_kv("n0", [PrefixRow("n0", 0, "small-lm", "sys-a", 0.1, 0, T0)])
    store.replace_prefix_kv("n1", [PrefixRow("n1", 1, "mid-lm", "sys-b", 0.2, 0, T0)])
    store.replace_prefix_kv(
        "n0",
        [
            PrefixRow("n0", 1, "small-lm", "sys-c", 0.3, 1, T0),
            PrefixRow("n0", 1, "small-lm", "sys-a", 0.1, 0, T0),
        ],
    )
    rows = store.prefix_kv()
    assert [(r.node, r.gpu, r.prefix_id, r.lru_rank) for r in rows] == [
        ("n0", 1, "sys-a", 0),
        ("n0", 1, "sys-c", 1),
        ("n1", 1, "sys-b", 0),
    ]
    assert rows[1].gib == 0.3 and rows[1].updated == T0
    store.replace_prefix_kv("n0", [])
    assert [r.node for r in store.prefix_kv()] == ["n1"]


def test_runner_up_details_round_trip_and_old_rows_still_read(engine: Engine) -> None:
    store = FateStore(engine)
    store.ensure_schema()
    predicted = {"wait": 0.0, "load": 27.0, "input": 0.0, "prefill": 0.5, "decode": 0.5}
    store.record_launch(
        _row(
            runner_up=(2, 3),
            runner_up_node="n1",
            runner_up_predicted=predicted,
            runner_up_terms={"residency": 0.0, "eviction": 1.0},
        )
    )
    [row] = store.placements()
    assert (row.runner_up, row.runner_up_node) == ((2, 3), "n1")
    assert row.runner_up_predicted == predicted
    assert row.runner_up_terms == {"residency": 0.0, "eviction": 1.0}
    # A row written before the runner-up's details were kept holds a bare GPU list.
    with engine.begin() as conn:
        conn.execute(update(fate_placement).values(runner_up=[0]))
    [old] = store.placements()
    assert (old.runner_up, old.runner_up_node, old.runner_up_predicted) == ((0,), None, None)
    store.record_launch(_row("judge", runner_up=None, runner_up_score=None))
    judge = next(r for r in store.placements() if r.key.task_id == "judge")
    assert judge.runner_up is None and judge.runner_up_predicted is None
