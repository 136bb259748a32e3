"""Signed session cookies and CSRF tokens.

The cookie holds ``user id . issued-at . signature``; the signature covers a fragment of the
password hash and the user's session epoch, so changing a password or signing out ends every
session of the user (a stolen cookie stops working too). CSRF tokens are an HMAC of the session
(or, on the sign-in form, of a timestamp), compared in constant time on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import Connection

from leadflow.dashboard.users import User
from leadflow.db.app_secrets import app_secret
from leadflow.workspace import Workspace

COOKIE = "lf_session"
MAX_AGE_S = 12 * 3600
LOGIN_TOKEN_MAX_AGE_S = 3600
SESSION_KEY_NAME = _NAME = "dashboard_session"


def session_key(ws: Workspace, conn: Connection) -> bytes:
    """The signing key, made on first use (the caller's transaction must be able to write)."""
    key = app_secret(ws, conn, _NAME, create=True)
    if key is None:  # create=True always makes one
        raise RuntimeError("no dashboard session key")
    return key


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def issue(key: bytes, user: User, now: datetime) -> str:
    body = f"{user.id}.{int(now.timestamp())}"
    return f"{body}.{_sign(key, _signed_part(body, user))}"


def user_id_of(value: str | None, now: datetime) -> int | None:
    """The user id a cookie claims if it is well formed and not expired (the signature is checked
    by :func:`verify` once the user is loaded)."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    if not 0 <= now.timestamp() - int(parts[1]) <= MAX_AGE_S:
        return None
    return int(parts[0])


def verify(key: bytes, value: str, user: User) -> bool:
    body = value.rsplit(".", 1)[0]
    return hmac.compare_digest(value.rsplit(".", 1)[1], _sign(key, _signed_part(body, user)))


def _signed_part(body: str, user: User) -> str:
    return f"{body}.{user.password_hash[-16:]}.{user.session_epoch}"


def csrf_token(key: bytes, session: str) -> str:
    return _sign(key, "csrf:" + session)


def check_csrf(key: bytes, session: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(key, session), presented or "")


def login_token(key: bytes, now: datetime) -> str:
    ts = str(int(now.timestamp()))
    return f"{ts}.{_sign(key, 'login:' + ts)}"


def check_login_token(key: bytes, presented: str | None, now: datetime) -> bool:
    if not presented or "." not in presented:
        return False
    ts, sig = presented.split(".", 1)
    if not ts.isdigit() or not 0 <= now.timestamp() - int(ts) <= LOGIN_TOKEN_MAX_AGE_S:
        return False
    return hmac.compare_digest(sig, _sign(key, "login:" + ts))
