"""``Idempotency-Key`` on every POST: the same key replays the first response for 24 hours; the
same key with different parameters is refused (422).

The key is checked and the response stored in the same transaction as the work itself, so a
request either happened (and its response is on record) or did not; on PostgreSQL concurrent
requests with one key wait for each other on an advisory lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection, delete, insert, select, text

from leadflow.db.tables import idempotency_keys
from leadflow.errors import InvalidInput, Problem
from leadflow.workspace import Workspace

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 1))")

Work = Callable[[Connection], tuple[int, BaseModel | dict[str, Any] | list[Any], dict[str, str]]]


def run(ws: Workspace, request: Request, principal: str, params: Any, work: Work) -> Response:
    """Do ``work`` in one transaction, honouring the request's Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is not None and not (1 <= len(key) <= 255):
        raise InvalidInput("invalid Idempotency-Key", [Problem(HEADER, "must be 1 to 255 characters")])
    with ws.transaction() as conn:
        if key is None:
            status, body, headers = work(conn)
            return _fast_response(status, body, headers)
        digest = hashlib.sha256(
            f"{request.method} {request.url.path}?{request.url.query}\n{_fingerprint(params)}".encode()
        ).hexdigest()
        now = ws.clock.now()
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK, {"k": f"{principal}\n{key}"})
        found = conn.execute(
            select(idempotency_keys).where(idempotency_keys.c.key == key, idempotency_keys.c.principal == principal)
        ).first()
        if found is not None and found.expires_at > now:
            if found.request_hash != digest:
                raise InvalidInput(
                    "Idempotency-Key reused with different parameters",
                    [Problem(HEADER, "this key was used for a different request in the last 24 hours; use a new key")],
                )
            return _response(found.status, found.response, {**(found.headers or {}), "Idempotent-Replayed": "true"})
        if found is not None:
            conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.key == key, idempotency_keys.c.principal == principal)
            )
        status, body, headers = work(conn)
        payload = _json(body)
        conn.execute(
            insert(idempotency_keys).values(
                key=key,
                principal=principal,
                request_hash=digest,
                status=status,
                response=payload,
                headers=headers,
                created_at=now,
                expires_at=now + KEEP,
            )
        )
    return _response(status, payload, headers)


def expire(ws: Workspace, conn: Connection) -> int:
    """``api.expire_idempotency_keys``: forget keys older than 24 hours."""
    return int(
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= ws.clock.now())).rowcount or 0
    )


def _fingerprint(params: Any) -> str:
    if isinstance(params, BaseModel):
        return params.model_dump_json()
    if isinstance(params, list):
        return "[" + ",".join(_fingerprint(p) for p in params) + "]"
    return repr(params)


def _json(body: BaseModel | dict[str, Any] | list[Any]) -> Any:
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", by_alias=True)
    return body


def _response(status: int, payload: Any, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def _fast_response(status: int, body: BaseModel | dict[str, Any] | list[Any], headers: dict[str, str]) -> Response:
    """Serialise straight to JSON bytes (pydantic's Rust serialiser; orjson for plain data)."""
    content = body.model_dump_json(by_alias=True).encode() if isinstance(body, BaseModel) else orjson.dumps(body)
    return Response(content, status_code=status, headers=headers, media_type="application/json")
