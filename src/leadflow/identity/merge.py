"""Merge two leads into one, and undo it.

Survivorship (:func:`survive`) is a pure function over the two rows and the workspace's rules:
per field, the most recent non-empty value, the oldest, the one from the most trusted source, the
longest, or the survivor's. Consent merges to the most restrictive choice; the first touch keeps
its attribution. Everything attached to the merged lead (events, opportunities, revenue, web
history) moves to the survivor, and the merge keeps both rows as they were and the list of what
moved, so :func:`unmerge_leads` puts both leads back exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from leadflow import events as ev
from leadflow.config.identity import Survivorship
from leadflow.db.tables import (
    lead_events,
    lead_match_keys,
    lead_merges,
    leads,
    match_pairs,
    opportunities,
    revenue,
    visitors,
    web_sessions,
)
from leadflow.db.types import UtcDateTime
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.identity.service import index_leads, match_model
from leadflow.workspace import Workspace

LEAD_MERGED = "lead_merged"
LEAD_MERGED_INTO = "lead_merged_into"
LEAD_UNMERGED = "lead_unmerged"

PERSONAL = ("email", "email_key", "first_name", "last_name", "phone", "notes")
# Fields decided by the survivorship rules.
SURVIVING = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "notes",
    "company",
    "title",
    "seniority",
    "website",
    "industry",
    "employees",
    "country",
    "state",
    "city",
    "language",
    "segment",
)
# Fields that come as a group with the one that decides them.
_WITH = {
    "email": ("email_key", "email_domain", "is_free_mail", "is_disposable_email"),
    "website": ("domain",),
    "employees": ("company_size",),
}
ATTRIBUTION = ("source", "medium", "campaign", "landing_page", "referrer", "capture_context", "visitor_id")
CONSENT = ("consent_email", "consent_phone", "consent_sms")
_MOVES = {
    "events": lead_events,
    "opportunities": opportunities,
    "revenue": revenue,
    "visitors": visitors,
    "web_sessions": web_sessions,
}
_DATETIME_COLUMNS = {c.name for c in leads.columns if isinstance(c.type, UtcDateTime)}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {}


def _restrictive(a: bool | None, b: bool | None) -> bool | None:
    """No beats unknown beats yes."""
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def survive(
    survivor: Mapping[str, Any], other: Mapping[str, Any], rules: Survivorship
) -> tuple[dict[str, Any], dict[str, str]]:
    """The surviving values (only those that differ from the survivor's) and, per changed
    field, which rule decided it."""
    newer, older = (
        (survivor, other)
        if (survivor["updated_at"], survivor["id"]) >= (other["updated_at"], other["id"])
        else (other, survivor)
    )
    first, second = (
        (survivor, other)
        if (survivor["created_at"], survivor["id"]) <= (other["created_at"], other["id"])
        else (other, survivor)
    )
    trust = {source: i for i, source in enumerate(rules.source_trust)}

    def rank(lead: Mapping[str, Any]) -> int:
        return trust.get(lead.get("source") or "", len(trust))

    out: dict[str, Any] = {}
    trace: dict[str, str] = {}
    for name in SURVIVING:
        a, b = survivor.get(name), other.get(name)
        if _empty(b) or a == b:
            continue
        rule = rules.fields.get(name, rules.default)
        if _empty(a):
            pick, why = other, "only value"
        elif rule == "most_recent":
            pick, why = newer, rule
        elif rule == "oldest":
            pick, why = first, rule
        elif rule == "longest":
            pick, why = (other if len(str(b)) > len(str(a)) else survivor), rule
        elif rule == "most_trusted_source":
            ra, rb = rank(survivor), rank(other)
            pick, why = (other if rb < ra else survivor if ra < rb else newer), rule
        else:
            pick, why = survivor, rule
        if pick is other:
            for field in (name, *_WITH.get(name, ())):
                if survivor.get(field) != other.get(field):
                    out[field] = other.get(field)
            trace[name] = why
    custom = {**(older.get("custom") or {}), **(newer.get("custom") or {})} or None
    if custom != survivor.get("custom"):
        out["custom"] = custom
        trace["custom"] = "most_recent per key"
    for name in ATTRIBUTION:  # the first touch keeps its attribution
        value = first.get(name) if not _empty(first.get(name)) else second.get(name)
        if value != survivor.get(name):
            out[name] = value
            trace[name] = "first touch"
    for name in CONSENT:
        value = _restrictive(survivor.get(name), other.get(name))
        if value != survivor.get(name):
            out[name] = value
            trace[name] = "most restrictive"
    if other.get("do_not_contact") and not survivor.get("do_not_contact"):
        out["do_not_contact"] = True
        trace["do_not_contact"] = "most restrictive"
    for name, pick_min in (("created_at", True), ("first_contact_at", True), ("last_activity_at", False)):
        values = [v for v in (survivor.get(name), other.get(name)) if v is not None]
        if values:
            value = min(values) if pick_min else max(values)
            if value != survivor.get(name):
                out[name] = value
                trace[name] = "earliest" if pick_min else "latest"
    for name in ("account_id", "owner_id", "team_id"):
        if survivor.get(name) is None and other.get(name) is not None:
            out[name] = other[name]
            trace[name] = "only value"
    return out, trace


def _snapshot(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _restore(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (datetime.fromisoformat(v) if k in _DATETIME_COLUMNS and isinstance(v, str) else v)
        for k, v in snapshot.items()
    }


def _load(conn: Connection, lead_id: int) -> dict[str, Any]:
    row = conn.execute(select(leads).where(leads.c.id == lead_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no lead with id {lead_id}")
    return dict(row._mapping)


def merge_leads(
    ws: Workspace,
    conn: Connection,
    survivor_id: int,
    merged_id: int,
    *,
    actor: str,
    reason: str | None = None,
    probability: float | None = None,
) -> dict[str, Any]:
    """Merge ``merged_id`` into ``survivor_id``; returns the merge (id, changed fields)."""
    if survivor_id == merged_id:
        raise InvalidInput("a lead cannot be merged with itself", [Problem("other_lead_id", "give another lead")])
    return merge_many(ws, conn, [(survivor_id, merged_id, probability)], actor=actor, reason=reason, strict=True)[0]


_CHUNK = 500
_SURVIVOR_COLUMNS = tuple(
    dict.fromkeys(
        (
            *SURVIVING,
            *(c for group in _WITH.values() for c in group),
            "custom",
            *ATTRIBUTION,
            *CONSENT,
            "do_not_contact",
            "created_at",
            "first_contact_at",
            "last_activity_at",
            "account_id",
            "owner_id",
            "team_id",
            "updated_at",
        )
    )
)
_UPDATE_SURVIVOR = (
    update(leads).where(leads.c.id == bindparam("_id")).values({c: bindparam(f"v_{c}") for c in _SURVIVOR_COLUMNS})
)
_MARK_MERGED = (
    update(leads)
    .where(leads.c.id == bindparam("_id"))
    .values(merged_into_id=bindparam("_into"), updated_at=bindparam("_at"))
)
_CLOSE_PAIR = (
    update(match_pairs)
    .where(match_pairs.c.lead_id == bindparam("_lo"), match_pairs.c.other_lead_id == bindparam("_hi"))
    .values(
        status="merged",
        decided_at=bindparam("_at"),
        decided_by=bindparam("_by"),
        decision_reason=bindparam("_reason"),
        merge_id=bindparam("_merge"),
    )
)


def _rows(conn: Connection, ids: list[int], lock: bool) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(leads).where(leads.c.id.in_(ids[start : start + _CHUNK]))
        if lock:
            query = query.order_by(leads.c.id).with_for_update()
        out.update({row.id: dict(row._mapping) for row in conn.execute(query)})
    return out


def merge_many(
    ws: Workspace,
    conn: Connection,
    pairs: Sequence[tuple[int, int, float | None]],
    *,
    actor: str,
    reason: str | None = None,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """Merge many (survivor, merged, probability) at once, in order, with a few statements per
    table rather than a dozen per merge (the batch dedupe merges tens of thousands).

    A survivor may absorb several leads; each merge keeps the survivor as it was just before it,
    so they unmerge one by one, latest first. With ``strict`` a merged or erased lead is an error;
    otherwise its pair is skipped.
    """
    now = ws.clock.now()
    ids = sorted({i for s, m, _ in pairs for i in (s, m)})
    rows = _rows(conn, ids, lock=conn.dialect.name == "postgresql")
    if strict:
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFound(f"no lead with id {', '.join(map(str, missing))}")
    rules = ws.config.identity.survivorship
    plans = []
    for survivor_id, merged_id, probability in pairs:
        survivor, other = rows.get(survivor_id), rows.get(merged_id)
        problem = None
        if survivor is None or other is None or survivor_id == merged_id:
            problem = "missing"
        else:
            for lead in (survivor, other):
                if lead["merged_into_id"] is not None:
                    problem = f"lead {lead['id']} was already merged into lead {lead['merged_into_id']}"
                elif lead["erased_at"] is not None:
                    problem = f"lead {lead['id']} was erased"
        if problem is not None:
            if strict:
                raise Conflict(problem)
            continue
        assert survivor is not None and other is not None
        changes, trace = survive(survivor, other, rules)
        after = {**survivor, **changes, "updated_at": max(now, survivor["updated_at"])}
        plans.append((survivor, other, changes, trace, after, probability))
        rows[survivor_id] = after
        rows[merged_id] = {**other, "merged_into_id": survivor_id}
    if not plans:
        return []

    merged_ids = [other["id"] for _, other, *_ in plans]
    into = {other["id"]: survivor["id"] for survivor, other, *_ in plans}
    moved: dict[int, dict[str, list[int]]] = {m: {name: [] for name in _MOVES} for m in merged_ids}
    for name, table in _MOVES.items():
        for start in range(0, len(merged_ids), _CHUNK):
            part = merged_ids[start : start + _CHUNK]
            for row_id, lead_id in conn.execute(select(table.c.id, table.c.lead_id).where(table.c.lead_id.in_(part))):
                moved[lead_id][name].append(row_id)
        params = [{"_to": into[m], "_from": m} for m in merged_ids if moved[m][name]]
        if params:
            conn.execute(
                update(table).where(table.c.lead_id == bindparam("_from")).values(lead_id=bindparam("_to")), params
            )

    merge_rows = [
        {
            "survivor_id": survivor["id"],
            "merged_id": other["id"],
            "survivor_before": _snapshot(survivor),
            "merged_before": _snapshot(other),
            "moved": moved[other["id"]],
            "probability": probability,
            "actor": actor,
            "reason": reason,
            "created_at": now,
        }
        for survivor, other, _, _, _, probability in plans
    ]
    merge_ids = list(
        conn.execute(
            insert(lead_merges).returning(lead_merges.c.id, sort_by_parameter_order=True), merge_rows
        ).scalars()
    )
    conn.execute(_MARK_MERGED, [{"_id": m, "_into": into[m], "_at": now} for m in merged_ids])
    finals = {survivor["id"]: rows[survivor["id"]] for survivor, *_ in plans}
    conn.execute(
        _UPDATE_SURVIVOR, [{"_id": i, **{f"v_{c}": row.get(c) for c in _SURVIVOR_COLUMNS}} for i, row in finals.items()]
    )
    index_leads(conn, match_model(ws.rules), [*finals.values(), *({**o, "id": into[o["id"]]} for _, o, *_ in plans)])
    conn.execute(
        _CLOSE_PAIR,
        [
            {
                "_lo": min(s["id"], o["id"]),
                "_hi": max(s["id"], o["id"]),
                "_at": now,
                "_by": actor,
                "_reason": reason,
                "_merge": merge_id,
            }
            for (s, o, *_), merge_id in zip(plans, merge_ids, strict=True)
        ],
    )
    events = []
    out = []
    for (survivor, other, changes, trace, _after, probability), merge_id in zip(plans, merge_ids, strict=True):
        survivor_id, merged_id = survivor["id"], other["id"]
        personal_changes = {k: changes[k] for k in PERSONAL if k in changes and k != "email_key"}
        facts = {k: v for k, v in changes.items() if k not in PERSONAL}
        changed = sorted(c for c in changes if c != "email_key")
        data = {
            "merge_id": merge_id,
            "merged_id": merged_id,
            "survivor_id": survivor_id,
            "changed": changed,
            "rules": trace,
            "after": _snapshot(facts),
            "before": _snapshot({k: survivor.get(k) for k in facts}),
            "moved": {k: len(v) for k, v in moved[merged_id].items()},
            "probability": probability,
            "reason": reason,
        }
        personal = (
            {"before": {k: survivor.get(k) for k in personal_changes}, "after": personal_changes}
            if personal_changes
            else None
        )
        common = {"occurred_at": now, "recorded_at": now, "actor": actor, "config_version": ws.version}
        events.append(ev.event_row(type=LEAD_MERGED, lead_id=survivor_id, data=data, personal=personal, **common))
        events.append(
            ev.event_row(
                type=LEAD_MERGED_INTO,
                lead_id=merged_id,
                data={"merge_id": merge_id, "survivor_id": survivor_id, "reason": reason},
                **common,
            )
        )
        out.append({"merge_id": merge_id, "survivor_id": survivor_id, "merged_id": merged_id, "changed": changed})
    ev.append(conn, events)
    return out


def unmerge_leads(ws: Workspace, conn: Connection, merged_id: int, *, actor: str) -> dict[str, Any]:
    """Undo the merge of ``merged_id``: both leads as they were, everything moved moves back."""
    merge = conn.execute(
        select(lead_merges)
        .where(lead_merges.c.merged_id == merged_id, lead_merges.c.unmerged_at.is_(None))
        .order_by(lead_merges.c.id.desc())
        .with_for_update()
    ).first()
    if merge is None:
        if conn.execute(select(leads.c.id).where(leads.c.id == merged_id)).first() is None:
            raise NotFound(f"no lead with id {merged_id}")
        raise Conflict(f"lead {merged_id} is not merged into another lead: there is nothing to unmerge")
    survivor_id = merge.survivor_id
    survivor_now = _load(conn, survivor_id)
    if survivor_now["merged_into_id"] is not None:
        raise Conflict(
            f"lead {survivor_id} has since been merged into lead {survivor_now['merged_into_id']}; unmerge that first"
        )
    later = conn.execute(
        select(lead_merges.c.id).where(
            lead_merges.c.survivor_id == survivor_id,
            lead_merges.c.id > merge.id,
            lead_merges.c.unmerged_at.is_(None),
        )
    ).first()
    if later is not None:
        raise Conflict(
            f"lead {survivor_id} absorbed another lead after this merge (merge {later.id}); unmerge that first"
        )
    now = ws.clock.now()
    survivor_before = _restore(merge.survivor_before)
    merged_before = _restore(merge.merged_before)
    survivor_before.pop("id")
    merged_before.pop("id")
    conn.execute(update(leads).where(leads.c.id == survivor_id).values(**survivor_before))
    conn.execute(update(leads).where(leads.c.id == merged_id).values(**merged_before))
    for name, ids in (merge.moved or {}).items():
        table = _MOVES[name]
        if ids:
            conn.execute(
                update(table).where(table.c.id.in_(bindparam("ids", expanding=True))).values(lead_id=merged_id),
                {"ids": ids},
            )
    # keys the merge filed under the survivor that its own values do not give it
    model = match_model(ws.rules)
    own = set(model.key_hashes({**survivor_before, "id": survivor_id}))
    theirs = set(model.key_hashes({**merged_before, "id": merged_id})) - own
    if theirs:
        conn.execute(
            delete(lead_match_keys).where(
                lead_match_keys.c.lead_id == survivor_id, lead_match_keys.c.key.in_(list(theirs))
            )
        )
    index_leads(conn, model, [{**merged_before, "id": merged_id}])
    conn.execute(update(lead_merges).where(lead_merges.c.id == merge.id).values(unmerged_at=now, unmerged_by=actor))
    conn.execute(
        update(match_pairs)
        .where(match_pairs.c.merge_id == merge.id)
        .values(status="kept_apart", decided_at=now, decided_by=actor, decision_reason="unmerged")
    )
    rows = [
        ev.event_row(
            type=LEAD_UNMERGED,
            lead_id=lead_id,
            occurred_at=now,
            recorded_at=now,
            actor=actor,
            config_version=ws.version,
            data={"merge_id": merge.id, "survivor_id": survivor_id, "merged_id": merged_id},
        )
        for lead_id in (survivor_id, merged_id)
    ]
    ev.append(conn, rows)
    return {"merge_id": merge.id, "survivor_id": survivor_id, "merged_id": merged_id}
