"""Import a CSV file of leads or events through the pipeline, in batches, exactly once.

Each batch is one transaction: its leads (through ``process_many``, the same steps as every other
entry point), its rejected rows, and the import's progress (the last line committed). So an
import killed at any point and started again resumes after the last committed line, and every
row lands exactly once. A file already imported (same content, kind and mapping) adds nothing.
Rejected rows are reported with their line number and reason while the good rows land, and at the
end are written to ``FILE.errors.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from leadflow.capture.activity import record_event
from leadflow.capture.schemas import EventIn
from leadflow.capture.service import prepare, problems_from_validation
from leadflow.db.tables import import_rejections, import_runs
from leadflow.errors import Conflict, InvalidInput, LeadflowError, Problem
from leadflow.imports.mapping import ColumnMapping, apply, load
from leadflow.imports.sales import SALES_KINDS, import_row, parse
from leadflow.pipeline import process_many
from leadflow.workspace import Workspace

KINDS = ("leads", "events", *SALES_KINDS)
# Rows a transaction: SQLite's write lock is then held ~0.3 s at a time, so live captures are not
# kept waiting long by an import (measured: batches of 250 to 2,000 rows import equally fast).
BATCH = 500
csv.field_size_limit(10_000_000)


@dataclass
class ImportSummary:
    run_id: int
    file: str
    kind: str
    rows_read: int = 0
    created: int = 0
    merged: int = 0
    rejected: int = 0
    resumed_after_line: int = 0
    already_imported: bool = False
    seconds: float = 0.0
    error_file: str | None = None
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rows_with_lines(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header, and each data row with the line it starts on (quoted newlines respected)."""
    handle = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise InvalidInput("the file is empty", [Problem("file", "no header row")]) from None
    header = [h.strip() for h in header]
    names = [h or f"column_{i + 1}" for i, h in enumerate(header)]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            previous = reader.line_num
            for values in reader:
                start = previous + 1
                previous = reader.line_num
                if not any(v.strip() for v in values):
                    continue
                yield start, dict(zip(names, values, strict=False))

    return names, rows()


def import_file(
    ws: Workspace,
    path: Path,
    kind: str,
    *,
    mapping_path: Path | None = None,
    batch: int = BATCH,
    actor: str = "import",
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    if kind not in KINDS:
        raise InvalidInput("unknown kind", [Problem("kind", f"one of {', '.join(KINDS)}")])
    began = time.perf_counter()
    header, rows = rows_with_lines(path)
    mapping = load(mapping_path, header, kind)
    run = _start(ws, path, kind, mapping)
    summary = ImportSummary(run_id=run["id"], file=str(path), kind=kind, resumed_after_line=run["last_line"])
    if run["status"] == "done":
        summary.already_imported = True
        for name in ("rows_read", "created", "merged", "rejected"):
            setattr(summary, name, run[name])
        return summary
    size = path.stat().st_size
    chunk: list[tuple[int, dict[str, str]]] = []
    for line, row in rows:
        if line <= run["last_line"]:
            continue
        chunk.append((line, row))
        if len(chunk) >= batch:
            _import_batch(ws, run["id"], kind, mapping, chunk, actor)
            chunk = []
            if progress:
                progress(line, size)
    if chunk:
        _import_batch(ws, run["id"], kind, mapping, chunk, actor)
    summary = _finish(ws, run["id"], path, summary)
    summary.seconds = round(time.perf_counter() - began, 2)
    return summary


def _start(ws: Workspace, path: Path, kind: str, mapping: ColumnMapping) -> dict[str, Any]:
    digest, mapping_digest = file_hash(path), hashlib.sha256(mapping.model_dump_json().encode()).hexdigest()
    now = ws.clock.now()
    try:
        with ws.transaction() as conn:
            found = conn.execute(
                select(import_runs).where(
                    import_runs.c.file_hash == digest,
                    import_runs.c.kind == kind,
                    import_runs.c.mapping_hash == mapping_digest,
                )
            ).first()
            if found is not None:
                return dict(found._mapping)
            run_id = conn.execute(
                insert(import_runs)
                .values(
                    file_name=path.name,
                    file_hash=digest,
                    kind=kind,
                    mapping_hash=mapping_digest,
                    status="running",
                    started_at=now,
                    updated_at=now,
                )
                .returning(import_runs.c.id)
            ).scalar_one()
            return {"id": run_id, "status": "running", "last_line": 0}
    except IntegrityError:
        raise Conflict(f"{path.name} is being imported by another process right now") from None


def _import_batch(
    ws: Workspace, run_id: int, kind: str, mapping: ColumnMapping, chunk: list[tuple[int, dict[str, str]]], actor: str
) -> None:
    now = ws.clock.now()
    region = ws.config.workspace.default_region
    rejected: list[dict[str, Any]] = []
    created = merged = 0
    good = []
    if kind == "leads":  # cleaned before the write transaction: live captures wait less
        for line, row in chunk:
            try:
                good.append(prepare(apply(mapping, row), default_region=region, now=now, rules=ws.rules.capture))
            except InvalidInput as exc:
                rejected.append(_rejection(run_id, line, row, exc))
    with ws.transaction() as conn:
        if kind == "leads":
            for result in process_many(ws, conn, good, actor=actor):
                created += result.created
                merged += not result.created
        elif kind in SALES_KINDS:
            accounts_seen: dict[str, int] = {}
            for line, row in chunk:
                try:
                    item = parse(kind, apply(mapping, row), mapping.date_format)
                    with conn.begin_nested():
                        import_row(ws, conn, kind, item, actor, accounts_seen)
                    created += 1
                except LeadflowError as exc:
                    accounts_seen.clear()  # a rolled-back savepoint may have taken an account with it
                    rejected.append(_rejection(run_id, line, row, exc))
        else:
            for line, row in chunk:
                try:
                    event = EventIn.model_validate(apply(mapping, row))
                except ValidationError as exc:
                    rejected.append(
                        _rejection(run_id, line, row, InvalidInput("invalid event", problems_from_validation(exc)))
                    )
                    continue
                except InvalidInput as exc:
                    rejected.append(_rejection(run_id, line, row, exc))
                    continue
                try:
                    with conn.begin_nested():
                        record_event(ws, conn, event, actor=actor)
                    created += 1
                except LeadflowError as exc:
                    rejected.append(_rejection(run_id, line, row, exc))
        if rejected:
            conn.execute(insert(import_rejections), rejected)
        conn.execute(
            update(import_runs)
            .where(import_runs.c.id == run_id)
            .values(
                rows_read=import_runs.c.rows_read + len(chunk),
                created=import_runs.c.created + created,
                merged=import_runs.c.merged + merged,
                rejected=import_runs.c.rejected + len(rejected),
                last_line=chunk[-1][0],
                updated_at=now,
            )
        )


def _rejection(run_id: int, line: int, row: dict[str, str], exc: LeadflowError) -> dict[str, Any]:
    first = exc.problems[0] if exc.problems else Problem("row", exc.message)
    reason = "; ".join(f"{p.field}: {p.message}" for p in exc.problems) or exc.message
    return {"run_id": run_id, "line": line, "field": first.field[:100], "reason": reason[:500], "row": row}


def _finish(ws: Workspace, run_id: int, path: Path, summary: ImportSummary) -> ImportSummary:
    with ws.transaction() as conn:
        run = conn.execute(select(import_runs).where(import_runs.c.id == run_id)).one()
        rejections = [
            dict(r._mapping)
            for r in conn.execute(
                select(import_rejections).where(import_rejections.c.run_id == run_id).order_by(import_rejections.c.line)
            )
        ]
        if rejections:
            summary.error_file = str(_write_errors(path, rejections))
        conn.execute(delete(import_rejections).where(import_rejections.c.run_id == run_id))
        conn.execute(
            update(import_runs).where(import_runs.c.id == run_id).values(status="done", finished_at=ws.clock.now())
        )
    summary.rows_read, summary.created, summary.merged, summary.rejected = (
        run.rows_read,
        run.created,
        run.merged,
        run.rejected,
    )
    summary.rejections = [{"line": r["line"], "field": r["field"], "reason": r["reason"]} for r in rejections]
    return summary


def _write_errors(path: Path, rejections: list[dict[str, Any]]) -> Path:
    target = path.with_name(path.name + ".errors.csv")
    columns = list(dict.fromkeys(k for r in rejections for k in r["row"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "field", "reason", *columns])
    for r in rejections:
        writer.writerow([r["line"], r["field"], r["reason"], *(r["row"].get(c, "") for c in columns)])
    target.write_text(buffer.getvalue(), encoding="utf-8")
    return target
