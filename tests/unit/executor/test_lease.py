"""`PlannerLease` on a real PostgreSQL: one holder at a time, lost with its session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from airflow_fate.executor.lease import PlannerLease
from tests.pg import fresh_database


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database("fate_lease") as url:
        yield url


def test_only_one_executor_holds_the_lease(url: str) -> None:
    first, second = PlannerLease(url), PlannerLease(url)
    try:
        assert first.try_acquire() and first.held()
        assert not second.try_acquire() and not second.held()
        assert first.try_acquire(), "taking it again while holding it keeps it"
        first.release()
        assert second.try_acquire(), "a released lease goes to the standby"
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_a_holder_whose_session_ends_loses_the_lease_to_the_standby(url: str) -> None:
    """What happens when the active scheduler is killed: the server ends its session."""
    active, standby = PlannerLease(url), PlannerLease(url)
    admin = create_engine(url)
    try:
        assert active.try_acquire()
        assert not standby.try_acquire()
        with admin.begin() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted"
                )
            ).all()
        assert ended == [(True,)]
        assert not active.held(), "the holder notices its session is gone"
        assert standby.try_acquire()
        assert not active.try_acquire(), "the old holder cannot take it back"
    finally:
        active.release()
        standby.release()
        admin.dispose()


def test_only_postgresql_needs_a_lease() -> None:
    assert PlannerLease.needed("postgresql+psycopg2://airflow@db/airflow")
    assert not PlannerLease.needed("sqlite:////tmp/airflow.db")
