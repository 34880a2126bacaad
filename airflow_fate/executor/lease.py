"""One active planner per metadata database: a PostgreSQL session advisory lock.

Airflow runs several schedulers against one PostgreSQL database for high availability,
and each scheduler has its own `FateExecutor`. Two planners placing stages on the same
GPUs from their own, separate views of the cluster would double-book them. So only the
executor holding this lease plans and launches; the others are standbys that accept no
work (`FateExecutor.slots_available` is 0, so their schedulers queue nothing to them)
and try to take the lease at every heartbeat.

The lease is ``pg_try_advisory_lock`` on a connection held open for as long as the
executor is active. PostgreSQL drops a session's advisory locks when the session ends,
so a scheduler that is SIGKILLed, OOM-killed or cut off loses the lease as soon as the
server sees its connection close, and a standby takes over at its next heartbeat with
the state the database holds (`docs/adr/0015-one-active-planner.md`).

Other databases have no lease: Airflow supports several schedulers on PostgreSQL only
(and MySQL, which this executor does not lease yet), so there the executor is active.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

LEASE_KEY = 0x4641_5445_504C_414E
"""The advisory lock's key ("FATEPLAN" in ASCII), shared by every airflow-fate executor."""

CONNECT_TIMEOUT_S = 5


class PlannerLease:
    """Who may plan: see the module docstring. `try_acquire`, then check `held` often."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = create_engine(
            url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
        self._conn: Connection | None = None

    @staticmethod
    def needed(url: str) -> bool:
        """Whether schedulers sharing ``url`` may run at once (and so need the lease)."""
        return url.startswith("postgres")

    def try_acquire(self) -> bool:
        """Take the lease if no other executor holds it; whether this one holds it now."""
        if self._conn is not None:
            return self.held()
        try:
            conn = self._engine.connect()
        except SQLAlchemyError:
            return False
        try:
            lock = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEASE_KEY})
            got = bool(lock.scalar())
            conn.commit()
        except SQLAlchemyError:
            conn.invalidate()
            return False
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def held(self) -> bool:
        """Whether the lease's session is still alive (so the lock is still ours)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
        except SQLAlchemyError:
            self._drop()
            return False
        return True

    def release(self) -> None:
        """Give the lease up (closing the session releases the lock in any case)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEASE_KEY})
                self._conn.commit()
            except SQLAlchemyError:
                pass
            self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except SQLAlchemyError:
                conn.invalidate()
