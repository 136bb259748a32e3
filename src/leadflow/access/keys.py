"""API keys: shown once, stored as a SHA-256 hash, each with scopes.

A key looks like ``lf_<prefix>_<secret>``; the prefix finds the row, the hash of the whole key
proves it. Keys carry 256 bits of randomness, so a fast hash is the right tool (slow password
hashes exist for low-entropy secrets). Validated keys are cached in-process for a few seconds so
a capture does not pay a database read for its key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from leadflow.db.tables import api_keys
from leadflow.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Problem, Unauthenticated

SCOPES = {
    "leads:read": "read leads, their events and scores",
    "leads:write": "capture leads, move stages, assign leads, accept or reject handoffs",
    "events:write": "record activity (page views, emails, calls, product usage, ...)",
    "sales:write": "record opportunities, spend and revenue",
    "reviews:write": "decide review queue items",
    "metrics:read": "read metrics",
    "owners:write": "add and change owners and teams",
    "privacy": "export and erase a person's data",
    "admin": "everything",
}
CACHE_SECONDS = 10.0
TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api:{self.name}"

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: Connection, name: str, scopes: Iterable[str], now: datetime) -> tuple[str, ApiKey]:
    """A new key; the returned string is the only time the key is ever seen."""
    scopes = sorted(set(scopes))
    problems = [
        Problem("scopes", f"unknown scope {s!r}; scopes: {', '.join(SCOPES)}") for s in scopes if s not in SCOPES
    ]
    if not scopes:
        problems.append(Problem("scopes", "give at least one scope"))
    if not name.strip() or len(name) > 100:
        problems.append(Problem("name", "give a name of 1 to 100 characters"))
    if problems:
        raise InvalidInput("invalid API key", problems)
    if conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first():
        raise Conflict(f"an API key named {name!r} exists already")
    prefix = secrets.token_hex(4)
    key = f"lf_{prefix}_{secrets.token_urlsafe(32)}"
    key_id = conn.execute(
        insert(api_keys)
        .values(name=name, prefix=prefix, secret_hash=_hash(key), scopes=scopes, created_at=now)
        .returning(api_keys.c.id)
    ).scalar_one()
    return key, ApiKey(int(key_id), name, frozenset(scopes))


def list_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
    return [{k: v for k, v in row._mapping.items() if k != "secret_hash"} for row in rows]


def revoke_key(conn: Connection, name: str, now: datetime) -> None:
    result = conn.execute(
        update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    if not result.rowcount:
        raise NotFound(f"no active API key named {name!r}")


class KeyCache:
    """Validated keys for a few seconds (revocation takes effect within ``CACHE_SECONDS``)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey | None, datetime | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, ws: Any, presented: str | None, now: datetime) -> ApiKey:
        if not presented:
            raise Unauthenticated(
                "an API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        digest = _hash(presented)
        with self._lock:
            cached = self._entries.get(digest)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            key, last_used = cached[1], cached[2]
        else:
            key, last_used = self._load(ws, presented, digest)
            with self._lock:
                self._entries[digest] = (time.monotonic(), key, last_used)
        if key is None:
            raise Unauthenticated("the API key is not valid (unknown, malformed or revoked)")
        if last_used is None or now - last_used > TOUCH_EVERY:
            with ws.transaction() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(last_used_at=now))
            with self._lock:
                self._entries[digest] = (time.monotonic(), key, now)
        return key

    @staticmethod
    def _load(ws: Any, presented: str, digest: str) -> tuple[ApiKey | None, datetime | None]:
        parts = presented.split("_")
        if len(parts) < 3 or parts[0] != "lf" or len(presented) > 200:
            return None, None
        with ws.reader() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == parts[1])).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, digest):
            return None, None
        return ApiKey(int(row.id), row.name, frozenset(row.scopes)), row.last_used_at


def require(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise PermissionDenied(f"this API key lacks the scope {scope!r} ({SCOPES[scope]})")
