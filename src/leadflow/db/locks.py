"""Transaction-scoped locks on names, so that "is this id recorded yet? then record it" cannot
race between two writers (two imports, an import beside the API). SQLite serialises writers
already; on PostgreSQL these are advisory locks, taken in a fixed order, released at commit."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

_LOCK_MANY = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k"
)


def lock_names(conn: Connection, names: Iterable[str]) -> None:
    keys = sorted(set(names))
    if keys and conn.dialect.name == "postgresql":
        conn.execute(_LOCK_MANY, {"keys": keys})
