"""Secrets leadflow makes for itself (link-signing keys, the dashboard's session key, the erasure
salt): read from ``app_secrets``, made on first use in the caller's write transaction, cached per
workspace."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from leadflow.db.tables import app_secrets

if TYPE_CHECKING:
    from leadflow.workspace import Workspace


def cached_app_secret(ws: Workspace, name: str) -> bytes | None:
    """The secret ``name`` if this process has read it already (no database round trip)."""
    found: bytes | None = ws.caches.get(f"app_secret.{name}")
    return found


def app_secret(ws: Workspace, conn: Connection, name: str, *, create: bool) -> bytes | None:
    """The secret ``name``; made when missing and ``create`` (the first writer wins: two processes
    making it at once end with one value), else None."""
    cached = cached_app_secret(ws, name)
    if cached is not None:
        return cached
    query = select(app_secrets.c.value).where(app_secrets.c.name == name)
    value = conn.execute(query).scalar_one_or_none()
    if value is None:
        if not create:
            return None
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            dialect_insert(app_secrets)
            .values(name=name, value=secrets.token_urlsafe(32), created_at=ws.clock.now())
            .on_conflict_do_nothing()
        )
        value = conn.execute(query).scalar_one()
    found = value.encode()
    ws.caches[f"app_secret.{name}"] = found
    return found
