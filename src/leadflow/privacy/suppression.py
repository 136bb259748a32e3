"""The suppression list: the email and phone of every erased person, kept only as salted
HMAC-SHA256 digests, so that a later capture with one of them is recognised without the address
or number being kept.

A capture with a suppressed value is refused (``privacy.after_erasure: refuse``), or taken as a
brand-new lead when it gives consent again (``fresh_consent``): never found again as the erased
person, their account or their owner. Taking it back removes its digests (the person is known
again, with their consent); erasing them again puts the digests back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from leadflow.capture.normalize import Capture, e164
from leadflow.db.app_secrets import app_secret
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import erasure_suppressions
from leadflow.errors import Conflict, Problem

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

_SALT = "erasure_salt"
_FOUND = Prepared(
    select(erasure_suppressions.c.kind, erasure_suppressions.c.digest).where(
        erasure_suppressions.c.digest.in_(bindparam("digests", expanding=True))
    )
)
CONSENT_CHANNELS = ("email", "phone", "sms")


def _salt(ws: Workspace, conn: Connection, *, create: bool) -> bytes | None:
    """The workspace's salt (made, in the caller's write transaction, by the first erasure)."""
    return app_secret(ws, conn, _SALT, create=create)


def digest(salt: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised value (lower-cased email, E.164 phone), keyed by the salt."""
    return hmac.new(salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def normal_email(value: str) -> str | None:
    value = value.strip().lower()
    return value if "@" in value else None


def normal_phone(value: str, region: str) -> str | None:
    value = value.strip()
    return value if value.startswith("+") and value[1:].isdigit() else e164(value, region)


def suppress(ws: Workspace, conn: Connection, emails: Iterable[str], phones: Iterable[str]) -> int:
    """Put an erased person's emails and phones on the list; returns how many digests it holds
    for them."""
    region = ws.config.workspace.default_region
    values = {("email", e) for v in emails if (e := normal_email(v))}
    values |= {("phone", p) for v in phones if (p := normal_phone(v, region))}
    if not values:
        return 0
    salt = _salt(ws, conn, create=True)
    assert salt is not None
    now = ws.clock.now()
    rows = sorted({(kind, digest(salt, kind, value)) for kind, value in values})
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        dialect_insert(erasure_suppressions).on_conflict_do_nothing(),
        [{"kind": kind, "digest": d, "created_at": now} for kind, d in rows],
    )
    return len(rows)


def _consents(capture: Capture) -> bool:
    consent = capture.consent or {}
    return any(consent.get(channel) is True for channel in CONSENT_CHANNELS) and not consent.get("do_not_contact")


def screen(ws: Workspace, conn: Connection, captures: Sequence[Capture]) -> dict[int, Conflict]:
    """Check captures against the suppression list: one query for all of them.

    Returns the refused ones by their index in ``captures``. Each one checked is marked
    ``screened``; one taken with fresh consent is marked ``after_erasure`` (the pipeline makes it
    a brand-new lead, with no account) and its digests leave the list.
    """
    for capture in captures:
        capture.screened = True
    wanted: dict[int, list[tuple[str, str]]] = {}
    for i, capture in enumerate(captures):
        pairs = [
            (kind, value) for kind, value in (("email", capture.email_key), ("phone", capture.personal.get("phone")))
        ]
        pairs = [(kind, value) for kind, value in pairs if value]
        if pairs:
            wanted[i] = pairs
    if not wanted:
        return {}
    salt = _salt(ws, conn, create=False)
    if salt is None:  # nobody was ever erased here
        return {}
    digests = {i: [(kind, digest(salt, kind, value)) for kind, value in pairs] for i, pairs in wanted.items()}
    found = {
        (row["kind"], row["digest"])
        for row in _FOUND.execute(conn, {"digests": sorted({d for p in digests.values() for _, d in p})})
    }
    if not found:
        return {}
    mode = ws.config.privacy.after_erasure
    refused: dict[int, Conflict] = {}
    taken: set[tuple[str, str]] = set()
    for i, pairs in digests.items():
        hits = [pair for pair in pairs if pair in found]
        if not hits:
            continue
        fields = [kind for kind, _ in hits]
        if mode == "fresh_consent" and _consents(captures[i]):
            captures[i].after_erasure = True
            taken.update(hits)
            continue
        if mode == "fresh_consent":
            why = (
                "belongs to a person whose data was erased on request; it is taken again only with fresh "
                "consent (consent.email, consent.phone or consent.sms true)"
            )
        else:
            why = "belongs to a person whose data was erased on request; leadflow does not take it again"
        refused[i] = Conflict(
            f"the {' and '.join(fields)} of this lead belong{'s' if len(fields) == 1 else ''} to an erased person",
            [Problem(field, why) for field in fields],
        )
    if taken:
        conn.execute(
            delete(erasure_suppressions).where(
                tuple_(erasure_suppressions.c.kind, erasure_suppressions.c.digest).in_(sorted(taken))
            )
        )
    return refused
