"""A worker's lock session: one PostgreSQL connection held open for the worker's life (never a
pooled one), on which it holds its liveness lock and the lock of every hall it owns.

Keys (two int4 keys each, hub/city/config.py): a worker holds (worker_class(city), its backend pid)
while it lives; a hall is owned by whoever holds hall_key(city, hall). PostgreSQL frees a session's
locks when the session ends: a worker killed -9 (its socket closes), a machine gone (TCP keepalives,
set short here), PostgreSQL restarted. `pg_locks` then shows who is alive and who owns what.

Fence: every writing transaction of a hall's store checks, under the store's writer lock, that this
session still holds the hall's lock (`fence`); if it does not (the session was lost, another worker
may own the hall now), the write is refused with StoreFenced. No write of a worker that lost a hall
can land after another took it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, text

from hub.city.config import CityConfig, hall_key, worker_class
from hub.store.store import StoreFenced

# Short keepalives: PostgreSQL frees the locks of a worker whose machine vanished within ~15 s.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
             "connect_timeout": 5}
SERVER_KEEPALIVE = ("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; "
                    "SET tcp_keepalives_count = 3")
LockLost = psycopg.OperationalError  # the session is gone: every lock it held is freed

_HELD = """SELECT l.objid::bigint AS key, l.pid, a.application_name
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %s::bigint::oid"""
_FENCE = """SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted
  AND classid = CAST(:classid AS bigint)::oid AND objid = CAST(:objid AS bigint)::oid
  AND pid = :pid AND database = CAST(:database AS bigint)::oid"""


def conninfo(url: str) -> str:
    """A libpq URL (postgresql://...) for a store URL, which may name the SQLAlchemy driver."""
    return "postgresql://" + url.split("://", 1)[1]


@dataclass(frozen=True)
class Holder:
    pid: int
    worker: str  # its application_name without the prefix


class LockSession:
    """One open connection, autocommit, and the advisory locks it holds."""

    APP_PREFIX = "hall-city "

    def __init__(self, url: str, city: str, worker: str) -> None:
        self.city = city
        self.worker = worker
        self._conn = psycopg.connect(conninfo(url), autocommit=True,
                                     application_name=(self.APP_PREFIX + worker)[:63], **KEEPALIVE)
        self._conn.execute(SERVER_KEEPALIVE)
        row = self._conn.execute(
            "SELECT pg_backend_pid(), (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        assert row is not None
        self.pid, self.database = int(row[0]), int(row[1])
        self._conn.execute("SELECT pg_advisory_lock(%s, %s)", (worker_class(city), self.pid))

    def close(self) -> None:
        """Ends the session: PostgreSQL frees every lock it held."""
        self._conn.close()

    def live_workers(self) -> dict[int, str]:
        """Backend pid -> name of every worker of the city alive now (this one among them)."""
        rows = self._conn.execute(_HELD, (worker_class(self.city),)).fetchall()
        return {int(pid): _name(app) for _key, pid, app in rows}

    def hall_holders(self, halls: list[str]) -> dict[str, Holder]:
        """The halls held by some worker, with that worker."""
        return hall_holders(self._conn, self.city, halls)

    def try_lock(self, hall: str) -> bool:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", hall_key(self.city, hall)).fetchone()
        return bool(row and row[0])

    def unlock(self, hall: str) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", hall_key(self.city, hall))

    def check(self) -> None:
        """A round trip: raises LockLost when the session is gone."""
        self._conn.execute("SELECT 1")

    def fence(self, hall: str) -> HallFence:
        return HallFence(self.city, hall, self.pid, self.database)


def hall_holders(conn: psycopg.Connection[tuple[object, ...]], city: str, halls: list[str]
                 ) -> dict[str, Holder]:
    by_key = {hall_key(city, hall)[1]: hall for hall in halls}
    rows = conn.execute(_HELD, (hall_key(city, "")[0],)).fetchall()
    return {by_key[int(str(key))]: Holder(int(str(pid)), _name(str(app) if app else None))
            for key, pid, app in rows if int(str(key)) in by_key}


def city_owners(config: CityConfig) -> dict[str, Holder | None]:
    """Every hall of a city config with the worker owning it now (None: nobody), read on a
    connection of its own that takes no lock: for operators, tests and a console's city page."""
    halls = [hall.hall for hall in config.halls]
    with psycopg.connect(conninfo(config.city.store), autocommit=True, connect_timeout=5) as conn:
        held = hall_holders(conn, config.city.name, halls)
    return {hall: held.get(hall) for hall in halls}


@dataclass(frozen=True)
class HallFence:
    """The store's fence for one hall (hub/store/store.py `Store.fence`): run in each writing
    transaction; refuses it unless the lock session `pid` still holds the hall's lock."""

    city: str
    hall: str
    pid: int
    database: int

    def __call__(self, conn: Connection) -> None:
        classid, objid = hall_key(self.city, self.hall)
        held = conn.execute(text(_FENCE), {"classid": classid, "objid": objid, "pid": self.pid,
                                           "database": self.database}).first()
        if held is None:
            raise StoreFenced(f"hall {self.hall}: this worker's lock session ({self.pid}) no longer "
                              "holds the hall's lock; another worker may own it")


def _name(application_name: str | None) -> str:
    text_ = application_name or ""
    return text_.removeprefix(LockSession.APP_PREFIX) if text_.startswith(LockSession.APP_PREFIX) else "?"
