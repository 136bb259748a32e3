"""Batch dedupe: duplicate clusters across a whole set of leads, in the database or in a CSV file.

The same :class:`MatchModel` as at capture. Candidate pairs come from blocking keys (records that
share a key; keys shared by more than ``max_block_size`` records are too common to tell anyone
apart and are skipped), each pair is scored once, pairs above the upper threshold are joined into
clusters (union-find) and pairs between the thresholds go to the review queue.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from leadflow.db.tables import lead_match_keys, leads, match_pairs
from leadflow.errors import InvalidInput, Problem
from leadflow.identity.matching import MatchModel
from leadflow.identity.service import key_rows, match_model

Progress = Callable[[str, int, int], None]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


@dataclass
class DedupeResult:
    records: int = 0
    candidate_pairs: int = 0
    merge_pairs: list[tuple[int, int, float]] = field(default_factory=list)
    review_pairs: list[tuple[int, int, float]] = field(default_factory=list)
    clusters: dict[int, int] = field(default_factory=dict)  # record → its cluster (smallest member)

    @property
    def duplicate_clusters(self) -> int:
        return len({c for r, c in self.clusters.items() if r != c})

    @property
    def duplicates(self) -> int:
        return sum(1 for r, c in self.clusters.items() if r != c)


def candidate_pairs(model: MatchModel, keyed: Iterable[tuple[int, Sequence[str | int]]]) -> set[tuple[int, int]]:
    """Pairs of records sharing a blocking key (blocks above the size limit skipped)."""
    blocks: dict[str | int, list[int]] = {}
    for record, keys in keyed:
        for key in keys:
            blocks.setdefault(key, []).append(record)
    limit = model.settings.max_block_size
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 1 < len(members) <= limit:
            members = sorted(set(members))
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    pairs.add((a, b))
    return pairs


def score_pairs(
    model: MatchModel,
    pairs: Iterable[tuple[int, int]],
    prepared: Mapping[int, tuple[Any, ...]],
    usable: Mapping[int, bool],
    result: DedupeResult,
    skip: set[tuple[int, int]] | None = None,
) -> None:
    from leadflow.identity.matching import probability

    uf = _UnionFind()
    for a, b in pairs:
        result.candidate_pairs += 1
        if skip and (a, b) in skip:
            continue
        p = probability(model.weight(prepared[a], prepared[b]))
        decision = model.decide(p, usable[a] and usable[b])
        if decision == "merge":
            result.merge_pairs.append((a, b, p))
            uf.union(a, b)
        elif decision == "review":
            result.review_pairs.append((a, b, p))
    for record in prepared:
        result.clusters[record] = uf.find(record)


def dedupe_records(model: MatchModel, records: Sequence[Mapping[str, Any]]) -> DedupeResult:
    """Clusters among in-memory records (their index is their id)."""
    result = DedupeResult(records=len(records))
    prepared = {i: model.prepare(r) for i, r in enumerate(records)}
    usable = {i: model.usable(r) for i, r in enumerate(records)}
    pairs = candidate_pairs(model, ((i, model.blocking_keys(r)) for i, r in enumerate(records)))
    score_pairs(model, sorted(pairs), prepared, usable, result)
    return result


# -- CSV -------------------------------------------------------------------------------------------

MATCH_FIELDS = ("email", "phone", "first_name", "last_name", "company", "domain", "website")


def dedupe_csv(
    model: MatchModel,
    path: Path,
    output: Path,
    fields: Mapping[str, str] | None = None,
    *,
    cluster_column: str = "cluster_id",
) -> DedupeResult:
    """Dedupe a CSV file on its own: ``output`` is the file with a cluster id per row (the row
    number of the cluster's first row) and the match probability to that row.

    ``fields`` maps lead fields to CSV columns (``email → E-Mail``); by default a column named
    like a lead field is that field.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    mapping = dict(fields) if fields else {c: c for c in columns if c in MATCH_FIELDS or c.startswith("custom.")}
    missing = [f"{field} → {column}" for field, column in mapping.items() if column not in columns]
    if missing:
        raise InvalidInput(
            f"{path.name} has no column for {', '.join(missing)}",
            [Problem("fields", f"columns are: {', '.join(columns)}")],
        )
    if not mapping:
        raise InvalidInput(
            f"{path.name}: no column to match on",
            [Problem("fields", f"name them, e.g. --fields email,first_name,...; columns are: {', '.join(columns)}")],
        )
    records = []
    for row in rows:
        record: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, column in mapping.items():
            value = (row.get(column) or "").strip()
            if not value:
                continue
            if name.startswith("custom."):
                custom[name[7:]] = value
            else:
                record[name] = value
        if "website" in record and "domain" not in record:
            from leadflow.enrich.service import derive

            record["domain"] = derive({"website": record["website"]})[0].get("domain")
        if custom:
            record["custom"] = custom
        records.append(record)
    result = dedupe_records(model, records)
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, cluster_column])
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({**row, cluster_column: result.clusters[i] + 1})
    return result


# -- the database ----------------------------------------------------------------------------------

_MATCH_COLUMNS = (
    leads.c.id,
    leads.c.email,
    leads.c.email_key,
    leads.c.first_name,
    leads.c.last_name,
    leads.c.phone,
    leads.c.company,
    leads.c.domain,
    leads.c.custom,
)


def reindex(conn: Connection, model: MatchModel, progress: Progress | None = None, chunk: int = 5000) -> int:
    """File every live lead under its blocking keys (after a change of matching settings, or for
    leads that predate them)."""
    from leadflow.identity.service import _INSERT_KEYS

    total = conn.execute(select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))).scalar_one()
    done = 0
    last = 0
    insert = _INSERT_KEYS[conn.dialect.name]
    while True:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(*_MATCH_COLUMNS)
                .where(leads.c.id > last, leads.c.merged_into_id.is_(None), leads.c.erased_at.is_(None))
                .order_by(leads.c.id)
                .limit(chunk)
            )
        ]
        if not rows:
            break
        insert.executemany(conn, key_rows(model, rows))
        last = rows[-1]["id"]
        done += len(rows)
        if progress:
            progress("indexing", done, total)
    return done


def database_pairs(conn: Connection, model: MatchModel) -> list[tuple[int, int]]:
    """Candidate pairs straight from the blocking-key index (one self-join, small blocks only)."""
    k1, k2 = lead_match_keys.alias("k1"), lead_match_keys.alias("k2")
    small = (
        select(lead_match_keys.c.key)
        .group_by(lead_match_keys.c.key)
        .having(func.count().between(2, model.settings.max_block_size))
        .subquery()
    )
    query = (
        select(k1.c.lead_id, k2.c.lead_id)
        .select_from(small.join(k1, k1.c.key == small.c.key).join(k2, k2.c.key == small.c.key))
        .where(k1.c.lead_id < k2.c.lead_id)
        .distinct()
    )
    return [(a, b) for a, b in conn.execute(query)]


def dedupe_database(
    ws: Any,
    conn: Connection,
    *,
    merge: bool = True,
    progress: Progress | None = None,
    actor: str = "dedupe",
    chunk: int = 2000,
) -> DedupeResult:
    """Duplicate clusters among the live leads: merge those above the upper threshold into the
    oldest lead of their cluster, queue those between the thresholds; pairs decided before
    (kept apart, merged, or still open) are not proposed again."""
    from leadflow.identity.review import open_pairs

    model = match_model(ws.rules)
    result = DedupeResult()
    if progress:
        progress("finding candidate pairs", 0, 1)
    pairs = database_pairs(conn, model)
    ids = sorted({i for pair in pairs for i in pair})
    prepared: dict[int, tuple[Any, ...]] = {}
    usable: dict[int, bool] = {}
    live: set[int] = set()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        for row in conn.execute(
            select(*_MATCH_COLUMNS, leads.c.merged_into_id, leads.c.erased_at).where(leads.c.id.in_(part))
        ):
            data = dict(row._mapping)
            prepared[data["id"]] = model.prepare(data)
            usable[data["id"]] = model.usable(data)
            if data["merged_into_id"] is None and data["erased_at"] is None:
                live.add(data["id"])
        if progress:
            progress("comparing", min(start + chunk, len(ids)), len(ids))
    known = {
        (r.lead_id, r.other_lead_id) for r in conn.execute(select(match_pairs.c.lead_id, match_pairs.c.other_lead_id))
    }
    pairs = [(a, b) for a, b in pairs if a in live and b in live]
    score_pairs(model, pairs, prepared, usable, result, skip=known)
    result.records = conn.execute(
        select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
    ).scalar_one()
    from leadflow.identity.matching import Match

    reviews = []
    for a, b, _p in result.review_pairs:
        reviews.append((a, b, model.compare(prepared[a], prepared[b])))
    open_pairs(ws, conn, reviews, found_by="batch")
    if merge:
        from leadflow.identity.merge import merge_many

        members = sorted((c, r) for r, c in result.clusters.items() if r != c)
        step = 5000
        for start in range(0, len(members), step):
            merge_many(
                ws, conn, [(s, m, None) for s, m in members[start : start + step]], actor=actor, reason="batch dedupe"
            )
            if progress:
                progress("merging", min(start + step, len(members)), len(members))
    _ = Match
    return result


def sample_statement(limit: int) -> Any:
    """Live leads to estimate m and u from (the most recent ``limit``)."""
    return (
        select(*_MATCH_COLUMNS)
        .where(leads.c.merged_into_id.is_(None), leads.c.erased_at.is_(None))
        .order_by(leads.c.id.desc())
        .limit(limit)
    )
