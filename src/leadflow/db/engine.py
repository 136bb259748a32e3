"""Engines for the two supported stores.

SQLite (the embedded default) runs in WAL mode; write transactions take the write lock up front
with ``BEGIN IMMEDIATE`` and wait on a busy timeout, so concurrent writers queue instead of
failing half-way. Read transactions use ``BEGIN DEFERRED`` (see :func:`read_options`).
PostgreSQL goes through psycopg 3 with a pool sized by ``LEADFLOW_POOL_SIZE``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from leadflow.errors import LeadflowError

SQLITE_BUSY_TIMEOUT_MS = 30_000
log = logging.getLogger(__name__)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """JSON for event data and JSON columns: datetimes as ISO 8601, Decimals as strings."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(value: str | bytes) -> Any:
    return orjson.loads(value)


def normalise_url(url: str) -> str:
    """Accept the URLs people write (``postgresql://``, ``postgres://``) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            json_serializer=dumps,
            json_deserializer=loads,
        )
        _KEEPERS[engine] = StatisticsKeeper(engine)
        return engine
    raise LeadflowError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")


class WalCheckpointer:
    """Moves WAL pages into the database file from a background thread.

    SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, adding
    10-20 ms to that one request. Checkpointing from a thread of our own (on its own
    connection, ``PASSIVE`` so it never blocks a writer) keeps that off the request path.
    ``wal_autocheckpoint`` stays on at a higher threshold as a safety net.
    """

    def __init__(self, path: str, interval: float = 0.25) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadflow-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            # No statistics are gathered (PRAGMA optimize on a connection that ran no queries
            # does nothing): the capture path's queries are indexed so that SQLite's plan without
            # statistics is the right one.
            while not self._stop.wait(self._interval):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class StatisticsKeeper:
    """Keeps PostgreSQL's planner statistics current while the database is being written.

    A table that grew from empty is planned as if still empty until it is analysed: the capture
    path's key lookups then walk every lead (measured: 5 ms a lookup at 1,000 leads instead of
    0.1 ms). Autovacuum analyses within a minute when it is on; some servers run with it off.
    At most every few seconds, after a write transaction (:meth:`poke`), a short-lived thread
    analyses the tables of our schema that changed by more than autovacuum's own threshold
    (50 rows + 10%) since their last analysis; ANALYZE does not block reads or writes. No thread
    lives on between checks, and the engine is only weakly referenced: an engine nobody uses
    any more is not kept open by its keeper.
    """

    STALE = (
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
        "AND n_mod_since_analyze > 50 + 0.1 * n_live_tup ORDER BY relname"
    )

    def __init__(self, engine: Engine, interval: float = 2.0) -> None:
        self._engine = weakref.ref(engine)
        self._interval = interval
        self._last = time.monotonic()
        self._busy = threading.Lock()

    def poke(self) -> None:
        """Check in the background, unless a check ran less than ``interval`` ago or still runs."""
        now = time.monotonic()
        if now - self._last < self._interval or not self._busy.acquire(blocking=False):
            return
        self._last = now
        threading.Thread(target=self._check, name="leadflow-pg-analyze", daemon=True).start()

    def _check(self) -> None:
        try:
            engine = self._engine()
            if engine is not None:
                self.analyze_stale(engine)
        except SQLAlchemyError:  # a busy or restarting server: the next poke tries again
            log.debug("statistics check failed", exc_info=True)
        finally:
            self._busy.release()

    def analyze_stale(self, engine: Engine) -> list[str]:
        """Analyse the stale tables, one transaction each, never waiting long for a lock (a
        migration or a TRUNCATE goes first); returns the tables analysed."""
        done = []
        with engine.connect() as conn:
            stale = list(conn.exec_driver_sql(self.STALE).scalars())
            conn.rollback()
            for table in stale:
                try:
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
                    conn.exec_driver_sql(f'ANALYZE "{table}"')
                    conn.commit()
                    done.append(table)
                except DBAPIError:
                    conn.rollback()
        return done


_KEEPERS: weakref.WeakKeyDictionary[Engine, StatisticsKeeper] = weakref.WeakKeyDictionary()


def statistics_keeper(engine: Engine) -> StatisticsKeeper | None:
    """The engine's statistics keeper (PostgreSQL engines made by :func:`make_engine`)."""
    return _KEEPERS.get(engine)


_BEGIN = {"IMMEDIATE": "BEGIN IMMEDIATE", "DEFERRED": "BEGIN DEFERRED", "EXCLUSIVE": "BEGIN EXCLUSIVE"}


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        json_serializer=dumps,
        json_deserializer=loads,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=16,
        max_overflow=16,
        # Every unit of work ends in an explicit COMMIT or ROLLBACK (engine.begin()), so the
        # pool's extra rollback on check-in would only cost time.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is deferred and too late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            # 4 KiB pages. A capture dirties ~34 B-tree pages (the lead, its events, their
            # indexes, its match keys), each written to the WAL at commit with two system calls,
            # and commit is the largest single cost of a capture. Measured on the capture path
            # (python -m bench pipeline): 4 KiB ~8% more leads/s than 2 KiB, where a lead row
            # (~1.3 KB) takes a page of its own, so every lead adds a page and a parent update;
            # 8 KiB and 1 KiB are slower. Takes effect when the database is created.
            "page_size=4096",
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "cache_size=-65536",
            "temp_store=MEMORY",
            "wal_autocheckpoint=10000",  # ~40 MB of WAL
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.connection.driver_connection.execute(_BEGIN[mode])

    database = make_url(url).database
    if database and database != ":memory:":
        checkpointer = WalCheckpointer(database)

        @event.listens_for(engine, "engine_disposed")
        def _on_dispose(_engine: Any) -> None:
            checkpointer.stop()

    return engine


def read_options() -> dict[str, Any]:
    """Execution options for a read-only unit of work (no write lock on SQLite)."""
    return {"sqlite_begin": "DEFERRED"}
