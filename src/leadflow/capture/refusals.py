"""Submissions the public form guards refused (honeypot filled, sent too fast, a timing token
that is not ours, too many from one address), kept so an operator can see what was turned away.

A refusal is a ``form_refused`` event with no lead and no personal data: the reason, the form's
capture context (only when it names a configured form), and the client's network (an IPv4
address cut to its /24, IPv6 to its /48), never what the bot typed. A flood from one address is
recorded at most once a minute, with the number of refusals that row stands for.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.db.tables import lead_events

REASONS = ("honeypot", "too_fast", "bad_token", "rate_limited")


def network_of(client: str) -> str:
    """The client's network, not the address: enough to see a flood, too coarse to name a person."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def refusal_row(
    *, reason: str, context: str | None, client: str, at: datetime, config_version: str, count: int = 1
) -> dict[str, Any]:
    data: dict[str, Any] = {"reason": reason, "network": network_of(client), "count": count}
    if context:
        data["context"] = context
    return ev.event_row(
        type=ev.FORM_REFUSED,
        lead_id=None,
        occurred_at=at,
        recorded_at=at,
        actor="web-form",
        config_version=config_version,
        data=data,
    )


def record(conn: Connection, **refusal: Any) -> None:
    """Keep one refusal (arguments of :func:`refusal_row`)."""
    ev.append(conn, [refusal_row(**refusal)])


def report(conn: Connection, *, since: datetime, limit: int = 20) -> dict[str, Any]:
    """Refusals since ``since``: counts per day and reason, and the latest ``limit`` of them."""
    rows = conn.execute(
        select(lead_events.c.occurred_at, lead_events.c.data)
        .where(lead_events.c.type == ev.FORM_REFUSED, lead_events.c.occurred_at >= since)
        .order_by(lead_events.c.occurred_at.desc(), lead_events.c.id.desc())
    ).all()
    per_day: Counter[tuple[str, str]] = Counter()
    for row in rows:
        per_day[(row.occurred_at.date().isoformat(), str(row.data.get("reason")))] += int(row.data.get("count", 1))
    return {
        "since": since,
        "days": [
            {"day": day, "reason": reason, "count": n} for (day, reason), n in sorted(per_day.items(), reverse=True)
        ],
        "recent": [
            {
                "at": row.occurred_at,
                "reason": row.data.get("reason"),
                "context": row.data.get("context"),
                "network": row.data.get("network"),
                "count": int(row.data.get("count", 1)),
            }
            for row in rows[:limit]
        ],
    }


def default_since(now: datetime, days: int = 7) -> datetime:
    return (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
