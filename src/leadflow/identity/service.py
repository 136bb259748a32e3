"""Find the existing lead a submission belongs to.

First exact on the normalised email key, through its index, for many submissions in one query;
then, for submissions no email matched, probabilistically (:mod:`.matching`) against the leads
that share a blocking key with them. Merged and erased leads are never matched.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import lead_events, lead_external_ids, lead_match_keys, leads, visitors, web_sessions
from leadflow.identity.matching import Match, MatchModel

# At most one live lead per email key (a unique partial index says so), so no ORDER BY/LIMIT:
# that tempts PostgreSQL's generic plan into walking the primary key instead of the index.
_BY_EMAIL_KEYS = select(leads).where(
    leads.c.email_key.in_(bindparam("keys", expanding=True)), leads.c.merged_into_id.is_(None)
)
_BY_EMAIL_KEY = Prepared(select(leads).where(leads.c.email_key == bindparam("key"), leads.c.merged_into_id.is_(None)))
_MERGED_BY_EMAIL_KEYS = Prepared(
    select(leads.c.email_key, leads.c.merged_into_id).where(
        leads.c.email_key.in_(bindparam("keys", expanding=True)), leads.c.merged_into_id.is_not(None)
    )
)
_BY_ID = Prepared(select(leads).where(leads.c.id == bindparam("id")))


def find_by_email_keys(conn: Connection, keys: Collection[str]) -> dict[str, dict[str, Any]]:
    """The live lead for each email key; the email of a merged lead finds its survivor, and
    erased leads have no key left to match."""
    if not keys:
        return {}
    found: dict[str, dict[str, Any]] = {}
    if len(keys) == 1:
        (key,) = keys
        rows = _BY_EMAIL_KEY.execute(conn, {"key": key})
        if rows:
            return {key: rows[0]}
    else:
        for row in conn.execute(_BY_EMAIL_KEYS, {"keys": list(keys)}):
            found.setdefault(row.email_key, dict(row._mapping))
    missing = [key for key in keys if key not in found]
    if missing:
        found.update(_survivors_by_email_keys(conn, missing))
    return found


_BY_EXTERNAL_IDS = Prepared(
    select(lead_external_ids.c.external_id.label("_named"), leads)
    .join(leads, leads.c.id == lead_external_ids.c.lead_id)
    .where(lead_external_ids.c.external_id.in_(bindparam("ids", expanding=True)))
)


def find_by_external_ids(conn: Connection, ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The lead each external id names (an id of a merged lead names its survivor). Erasure
    forgets a person's ids, so a later export naming one brings a new record."""
    if not ids:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for row in _BY_EXTERNAL_IDS.execute(conn, {"ids": list(ids)}):
        external_id = row.pop("_named")
        lead = row if row["merged_into_id"] is None else survivor(conn, row["merged_into_id"])
        if lead is not None:
            found[external_id] = lead
    return found


def remember_external_ids(conn: Connection, pairs: Collection[tuple[str, int]]) -> None:
    """Record that each external id names that lead (ids already known are left as they are)."""
    if not pairs:
        return
    rows = [{"external_id": external_id, "lead_id": lead_id} for external_id, lead_id in pairs]
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(lead_external_ids).on_conflict_do_nothing(), rows)
    else:
        conn.execute(sqlite.insert(lead_external_ids).on_conflict_do_nothing(), rows)


def survivor(conn: Connection, lead_id: int) -> dict[str, Any] | None:
    """The lead an id stands for now: the lead itself, or the one it was merged into, through
    chains of merges (None for an unknown id). The caller decides what an erased one means."""
    seen: set[int] = set()
    while lead_id not in seen:
        seen.add(lead_id)
        rows = _BY_ID.execute(conn, {"id": lead_id})
        if not rows or rows[0]["merged_into_id"] is None:
            return rows[0] if rows else None
        lead_id = rows[0]["merged_into_id"]
    return None  # a cycle cannot be made by merging; be safe


def _survivors_by_email_keys(conn: Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The email of a lead merged into another still names the person: its survivor, unless that
    was erased. One lookup in a small index when nothing is found."""
    found: dict[str, dict[str, Any]] = {}
    for row in _MERGED_BY_EMAIL_KEYS.execute(conn, {"keys": keys}):
        lead = survivor(conn, row["merged_into_id"])
        if lead is not None and lead["erased_at"] is None:
            found[row["email_key"]] = lead
    return found


_HISTORY_COLUMNS = (
    lead_events.c.visitor_id,
    lead_events.c.type,
    lead_events.c.data,
    lead_events.c.occurred_at,
    lead_events.c.id,
)
_HISTORY_OF_ONE = Prepared(
    select(*_HISTORY_COLUMNS).where(lead_events.c.visitor_id == bindparam("visitor"), lead_events.c.lead_id.is_(None))
)


def anonymous_history(conn: Connection, visitor_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """Events recorded for visitors before anyone knew who they were, oldest first."""
    if not visitor_ids:
        return {}
    if len(visitor_ids) == 1:
        (visitor,) = visitor_ids
        rows = _HISTORY_OF_ONE.execute(conn, {"visitor": visitor})
    else:
        query = select(*_HISTORY_COLUMNS).where(
            lead_events.c.visitor_id.in_(list(visitor_ids)),
            lead_events.c.visitor_id.is_not(None),
            lead_events.c.lead_id.is_(None),
        )
        rows = [dict(row._mapping) for row in conn.execute(query)]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["occurred_at"], r["id"])):
        out.setdefault(row["visitor_id"], []).append(
            {"type": row["type"], "occurred_at": row["occurred_at"], **(row["data"] or {})}
        )
    return out


_LINK_VISITOR = Prepared(
    update(visitors)
    .where(visitors.c.id == bindparam("visitor"), visitors.c.lead_id.is_(None))
    .values(lead_id=bindparam("lead"))
)
_LINK_SESSIONS = Prepared(
    update(web_sessions)
    .where(web_sessions.c.visitor_id == bindparam("visitor"), web_sessions.c.lead_id.is_(None))
    .values(lead_id=bindparam("lead"))
)
_LINK_EVENTS = Prepared(
    update(lead_events)
    .where(lead_events.c.visitor_id == bindparam("visitor"), lead_events.c.lead_id.is_(None))
    .values(lead_id=bindparam("lead"))
)


def link_visitors(conn: Connection, links: Sequence[tuple[str, int]]) -> None:
    """Join anonymous visitors' history (visitor, sessions, events) to the leads they turned out to be."""
    rows = [{"visitor": visitor, "lead": lead} for visitor, lead in links]
    for statement in (_LINK_VISITOR, _LINK_SESSIONS, _LINK_EVENTS):
        statement.executemany(conn, rows)


# -- probabilistic matching ----------------------------------------------------------------------

_MODELS: dict[str, Any] = {}


def match_model(rules: Any) -> MatchModel:
    """The compiled ``identity.match`` settings of a ruleset, cached per configuration version."""
    model = _MODELS.get(rules.version)
    if model is None:
        model = _MODELS[rules.version] = MatchModel(rules.config.identity.match)
    return model


_CANDIDATE_LIMIT = 300
_POPULAR_KEY = 25  # a key with more leads than this says little on its own
_MATCH_COLUMNS = ("id", "email", "email_key", "first_name", "last_name", "phone", "company", "domain", "custom")
_STATEMENTS: dict[int, Prepared] = {}


def _candidates_statement(model: MatchModel) -> Prepared:
    """Leads sharing any of the keys: only the columns the comparisons read (the full row of the
    one that wins is read afterwards), through the key index, never a scan."""
    statement = _STATEMENTS.get(id(model))
    if statement is None:
        names = dict.fromkeys(_MATCH_COLUMNS)
        for c in model.comparisons:
            if not c.field.startswith("custom.") and c.field in leads.c and c.field not in ("name",):
                names.setdefault(c.field)
        statement = _STATEMENTS[id(model)] = Prepared(
            select(lead_match_keys.c.key, *(leads.c[n] for n in names))
            .select_from(lead_match_keys.join(leads, leads.c.id == lead_match_keys.c.lead_id))
            .where(
                lead_match_keys.c.key.in_(bindparam("keys", expanding=True)),
                leads.c.merged_into_id.is_(None),
                leads.c.erased_at.is_(None),
            )
            .limit(bindparam("limit"))
        )
    return statement


@dataclass
class Candidate:
    """The best existing lead for a submission, and what the model says about the pair (``lead``
    holds the compared columns; the capture path reads the full row of a lead it merges into)."""

    lead: dict[str, Any]
    match: Match
    decision: str  # merge | review | new


def find_candidates(
    conn: Connection, model: MatchModel, incoming: Sequence[Mapping[str, Any]]
) -> list[Candidate | None]:
    """For each incoming lead, the most probable existing lead among those sharing a blocking key.

    One indexed query for the whole batch (blocking keys → leads); never a scan of ``leads``.
    At most ``_CANDIDATE_LIMIT`` rows a submission are read. When a key many leads share (a
    company's mail domain, a common name) fills that, the selective keys are read again on their
    own, so the one lead sharing the phone, name and company is still found.
    """
    keys_of = [model.key_hashes(lead) if model.enabled else [] for lead in incoming]
    wanted = {k for keys in keys_of for k in keys}
    if not wanted:
        return [None] * len(incoming)
    by_key: dict[int, dict[int, None]] = {}  # key → the leads filed under it, in the order read
    rows: dict[int, dict[str, Any]] = {}
    rows_limit = _CANDIDATE_LIMIT * len(incoming)  # the batch's budget, not one capture's
    statement = _candidates_statement(model)
    for _ in range(3):
        found = statement.execute(conn, {"keys": sorted(wanted), "limit": rows_limit})
        for data in found:
            by_key.setdefault(data.pop("key"), {})[data["id"]] = None
            rows.setdefault(data["id"], data)
        if len(found) < rows_limit:
            break
        popular = {k for k, ids in by_key.items() if len(ids) > _POPULAR_KEY}
        if not wanted & popular:
            break
        wanted -= popular
    prepared = {lead_id: model.prepare(row) for lead_id, row in rows.items()}
    limit = model.settings.max_candidates
    out: list[Candidate | None] = []
    for lead, keys in zip(incoming, keys_of, strict=True):
        shared: dict[int, int] = {}  # candidate → how many of the submission's keys it shares
        for k in keys:
            for lead_id in by_key.get(k, ()):
                shared[lead_id] = shared.get(lead_id, 0) + 1
        if not shared:
            out.append(None)
            continue
        mine = model.prepare(lead)
        best: tuple[float, int] | None = None
        # the candidates sharing the most keys first: a key many leads share (a company's
        # domain) must not crowd out the one lead that shares the phone, name and company
        ranked = sorted(shared, key=shared.__getitem__, reverse=True) if len(shared) > limit else shared
        for lead_id in list(ranked)[:limit]:
            w = model.weight(mine, prepared[lead_id])
            if best is None or w > best[0]:
                best = (w, lead_id)
        assert best is not None
        match = model.compare(mine, prepared[best[1]])
        decision = model.decide(match.probability, model.usable(lead))
        out.append(Candidate(lead=rows[best[1]], match=match, decision=decision))
    return out


_INSERT_KEYS = {
    "sqlite": Prepared(sqlite.insert(lead_match_keys).on_conflict_do_nothing(), ("key", "lead_id")),
    "postgresql": Prepared(postgresql.insert(lead_match_keys).on_conflict_do_nothing(), ("key", "lead_id")),
}


def index_leads(conn: Connection, model: MatchModel, rows: Sequence[Mapping[str, Any]]) -> None:
    """File leads under their blocking keys (keys of earlier values stay: they still identify)."""
    params = key_rows(model, rows)
    if params:
        _INSERT_KEYS[conn.dialect.name].executemany(conn, params)


def key_rows(model: MatchModel, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, int]]:
    return [{"key": k, "lead_id": row["id"]} for row in rows for k in set(model.key_hashes(row))]
