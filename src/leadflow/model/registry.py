"""The model registry: stored versions, which one is active, activation and rollback, and the
cached active predictor the pipeline scores with.

The active version is the newest row of ``model_activations``. The pipeline asks
:func:`active` for every batch; that answers from a per-workspace cache and looks at the database
at most every ``REFRESH_S`` seconds (so an activation by another process is picked up within
that), and trees are parsed once per version per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from leadflow.db.tables import model_activations, model_versions
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.workspace import Workspace

REFRESH_S = 30.0
ROLLBACK = "rollback"
_CACHE_KEY = "model.active"
_PREDICTORS_KEY = "model.predictors"  # version id -> (target, predictor), per workspace
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Active:
    version_id: int
    target: str
    predictor: Any  # leadflow.model.predictor.Predictor


SUMMARY_COLUMNS = (
    model_versions.c.id,
    model_versions.c.target,
    model_versions.c.created_at,
    model_versions.c.created_by,
    model_versions.c.trigger,
    model_versions.c.train_from,
    model_versions.c.train_to,
    model_versions.c.rows,
    model_versions.c.features,
    model_versions.c.report,
    model_versions.c.config_version,
)


def save(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(model_versions).values(**values).returning(model_versions.c.id)).scalar_one())


def versions(conn: Connection, *, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    query = select(*SUMMARY_COLUMNS).order_by(model_versions.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(model_versions.c.id < before)
    current = active_id(conn)
    return [{**dict(r._mapping), "active": r.id == current} for r in conn.execute(query)]


def get(conn: Connection, version_id: int, *, with_model: bool = False) -> dict[str, Any]:
    columns = [*SUMMARY_COLUMNS, model_versions.c.model_text, model_versions.c.meta] if with_model else SUMMARY_COLUMNS
    row = conn.execute(select(*columns).where(model_versions.c.id == version_id)).first()
    if row is None:
        raise NotFound(f"model version {version_id} does not exist", [Problem("version", f"no version {version_id}")])
    return {**dict(row._mapping), "active": active_id(conn) == version_id}


def latest_id(conn: Connection) -> int | None:
    return conn.execute(select(func.max(model_versions.c.id))).scalar()


def _current(conn: Connection) -> Any:
    return conn.execute(select(model_activations).order_by(model_activations.c.id.desc()).limit(1)).first()


def active_id(conn: Connection) -> int | None:
    row = _current(conn)
    return None if row is None else row.version_id


def activations(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    query = select(model_activations).order_by(model_activations.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]


def activate(ws: Workspace, conn: Connection, version_id: int | None, *, actor: str, reason: str) -> dict[str, Any]:
    """Put a version in force (``None``: no model, rules only). Recorded, never overwritten."""
    if version_id is not None:
        get(conn, version_id)
    current = active_id(conn)
    if current == version_id:
        raise Conflict(
            f"model version {version_id} is already active" if version_id else "no model is active",
            [Problem("version", "already in force")],
        )
    conn.execute(
        insert(model_activations).values(
            version_id=version_id,
            previous_version_id=current,
            activated_at=ws.clock.now(),
            actor=actor,
            reason=(f"activate: {reason}" if reason.startswith(ROLLBACK) else reason)[:300],
        )
    )
    forget(ws)
    return {"active": version_id, "previous": current}


def _stack(conn: Connection) -> list[int | None]:
    """The versions in force, oldest first, as activations pushed and rollbacks popped them."""
    stack: list[int | None] = [None]
    for row in conn.execute(select(model_activations).order_by(model_activations.c.id)):
        if row.reason.startswith(ROLLBACK) and len(stack) > 1:
            stack.pop()
        else:
            stack.append(row.version_id)
    return stack


def rollback(ws: Workspace, conn: Connection, *, actor: str, reason: str | None = None) -> dict[str, Any]:
    """Go back to the version that was in force before the current one; each rollback steps one
    activation further back (to no model at all, rules only, at the bottom)."""
    stack = _stack(conn)
    if len(stack) < 2:
        raise Conflict("no model activation to roll back", [Problem("version", "nothing was activated")])
    current, target = stack[-1], stack[-2]
    conn.execute(
        insert(model_activations).values(
            version_id=target,
            previous_version_id=current,
            activated_at=ws.clock.now(),
            actor=actor,
            reason=f"{ROLLBACK}: {reason}"[:300] if reason else ROLLBACK,
        )
    )
    forget(ws)
    return {"active": target, "previous": current}


# -- the cached active model -------------------------------------------------------------------


def forget(ws: Workspace) -> None:
    ws.caches.pop(_CACHE_KEY, None)


def active(ws: Workspace, conn: Connection) -> Active | None:
    """The model in force, from the cache (the database is asked at most every ``REFRESH_S``)."""
    now = time.monotonic()
    cached = ws.caches.get(_CACHE_KEY)
    if cached is not None and now - cached[0] < REFRESH_S:
        return cached[1]
    version_id = active_id(conn)
    found: Active | None = None
    if version_id is not None:
        found = Active(version_id, *_load(ws, conn, version_id))
    ws.caches[_CACHE_KEY] = (now, found)
    return found


def predictor_for(ws: Workspace, conn: Connection, version_id: int) -> Any:
    return _load(ws, conn, version_id)[1]


def _load(ws: Workspace, conn: Connection, version_id: int) -> tuple[str, Any]:
    from leadflow.model.predictor import Predictor

    with _LOCK:
        cache = ws.caches.setdefault(_PREDICTORS_KEY, {})
        hit = cache.get(version_id)
    if hit is not None:
        return hit
    row = conn.execute(
        select(model_versions.c.target, model_versions.c.model_text, model_versions.c.meta).where(
            model_versions.c.id == version_id
        )
    ).first()
    if row is None:
        raise InvalidInput("unknown model version", [Problem("version", f"no version {version_id}")])
    loaded = (row.target, Predictor.load(row.model_text, row.meta))
    with _LOCK:
        cache[version_id] = loaded
    return loaded
