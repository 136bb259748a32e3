"""Guards for public forms: a per-IP rate limit, a honeypot field, a minimum time to submit.

The time to submit is measured from a token leadflow puts in the forms it serves: the time the
form was rendered, signed with a workspace secret so it cannot be forged. Forms leadflow did not
serve carry no token and are not timed. A bot that trips a guard is answered as if it had
succeeded (it learns nothing); only the refusal is kept (``capture.refusals``), never what it sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random_secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, insert, select

from leadflow.config.workspace import RateLimit
from leadflow.db.tables import secrets

FORM_SECRET = "form_tokens"


def secret(conn: Connection, name: str, now: datetime) -> bytes:
    """A random secret kept in the database, created on first use, shared by all processes."""
    row = conn.execute(select(secrets.c.value).where(secrets.c.name == name)).first()
    if row is None:
        value = random_secrets.token_urlsafe(32)
        conn.execute(insert(secrets).values(name=name, value=value, created_at=now))
        return value.encode()
    return str(row.value).encode()


def timing_token(key: bytes, rendered_ms: int) -> str:
    signature = hmac.new(key, str(rendered_ms).encode(), hashlib.sha256).hexdigest()[:32]
    return f"{rendered_ms}.{signature}"


def seconds_since(key: bytes, token: str, now_ms: int) -> float | None:
    """Seconds since the form was rendered, or None if the token is not one of ours."""
    rendered = token.partition(".")[0]
    if not rendered.isdigit() or not hmac.compare_digest(timing_token(key, int(rendered)), token):
        return None
    return (now_ms - int(rendered)) / 1000


@dataclass
class _Bucket:
    tokens: float
    at: float
    refused: int = 0  # refusals not recorded yet
    noted_at: float = float("-inf")  # when a refusal was last recorded


@dataclass
class RateLimiter:
    """A token bucket per client, in this process: ``burst`` at once, then ``per_minute``."""

    limit: RateLimit
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, client: str) -> float:
        """0 if the request may go ahead, else the seconds to wait."""
        now = time.monotonic()
        rate = self.limit.per_minute / 60
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = _Bucket(float(self.limit.burst), now)
                if len(self._buckets) > 100_000:  # forget the quiet ones
                    self._buckets = {k: v for k, v in self._buckets.items() if now - v.at < 600}
            bucket.tokens = min(self.limit.burst, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate

    def refusals_to_record(self, client: str, every: float = 60.0) -> int:
        """After a refused request: how many refusals from this client to record now (the first
        one at once, then at most one record per ``every`` seconds standing for all since)."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                return 1
            bucket.refused += 1
            if now - bucket.noted_at < every:
                return 0
            count, bucket.refused, bucket.noted_at = bucket.refused, 0, now
            return count
