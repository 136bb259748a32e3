"""Signed links in nurture emails: the open pixel, tracked clicks and unsubscribe.

A token carries what the link is about (notification, lead, and for a click the destination) and
an HMAC over it with a key leadflow makes for itself, so a link cannot be forged into an open
redirect or into someone else's unsubscribe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from leadflow.db.app_secrets import app_secret
from leadflow.errors import NotFound

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

_NAME = "link_signing"


def signing_key(ws: Workspace, conn: Connection, *, create: bool = False) -> bytes:
    """The key links are signed with; made (in the caller's write transaction) on first use."""
    key = app_secret(ws, conn, _NAME, create=create)
    if key is None:
        raise NotFound("this link is not valid")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: dict[str, Any]) -> str:
    body = _b64(orjson.dumps(payload))
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:16])
    return f"{body}.{mac}"


def verify(key: bytes, token: str) -> dict[str, Any]:
    """The payload of a genuine token; NotFound (404) for anything else."""
    body, _, mac = token.partition(".")
    try:
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:16])
        if not mac or not hmac.compare_digest(mac, expected):
            raise ValueError
        payload = orjson.loads(_unb64(body))
        if not isinstance(payload, dict):
            raise ValueError
    except (ValueError, orjson.JSONDecodeError):
        raise NotFound("this link is not valid") from None
    return payload
