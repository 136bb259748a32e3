"""Import a CSV file of leads or events through the pipeline, in batches, exactly once.

Each batch is one transaction: its leads (through ``process_many``, the same steps as every other
entry point), its rejected rows, and the import's progress (the last line committed). So an
import killed at any point and started again resumes after the last committed line, and every
row lands exactly once. A file already imported (same content, kind and mapping) adds nothing.
Rejected rows are reported with their line number and reason while the good rows land, and at the
end are written to ``FILE.errors.csv``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, insert, select, update
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


def file_hash(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines (for the progress bar), in one reading."""
    digest, lines = hashlib.sha256(), 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest(), max(lines, 1)


# Byte-order marks: a file that starts with one is read in that encoding, whatever was asked.
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


@dataclass
class Unreadable:
    """A record that cannot be taken as a row: which field to blame and why."""

    field: str
    reason: str


class _Lines:
    """The file's physical lines for the CSV reader, keeping the ones read for the record in
    progress, so that a record that cannot be read is skipped and reading resumes on the line
    after it (an unclosed quote does not swallow the rest of the file)."""

    def __init__(self, handle: Iterator[str]) -> None:
        self.source, self.pending, self.taken, self.count = handle, deque[str](), list[str](), 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        text = self.pending.popleft() if self.pending else next(self.source)
        self.taken.append(text)
        self.count += 1
        return text

    def skip_record(self, start: int) -> None:
        """Read again from the line after ``start``, the first line of the record just read."""
        self.pending.extendleft(reversed(self.taken[1:]))
        self.count = start


def _encoding(path: Path, asked: str) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return "utf-8-sig" if asked.replace("_", "-").lower() in ("utf-8", "utf8") else asked


def rows_with_lines(
    path: Path, encoding: str = "utf-8"
) -> tuple[list[str], Iterator[tuple[int, dict[str, str] | Unreadable]]]:
    """The header, and each data row with the line it starts on (quoted newlines respected).

    A record that cannot be a row comes as :class:`Unreadable` with its line: bad quoting, a
    field over the size limit, bytes that are not text in the file's encoding, a NUL, or more or
    fewer values than the header has columns. Duplicate column names refuse the file.
    """
    try:
        handle = path.open(newline="", encoding=_encoding(path, encoding), errors="surrogateescape")
    except LookupError:
        raise InvalidInput(
            "unknown encoding", [Problem("encoding", f"{encoding!r} is not an encoding Python knows")]
        ) from None
    lines = _Lines(handle)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise InvalidInput("the file is empty", [Problem("file", "no header row")]) from None
    except csv.Error as exc:
        handle.close()
        raise InvalidInput("the header cannot be read", [Problem("file", f"line 1: {exc}")]) from None
    header = [h.strip() for h in header]
    problem = _text_problem(header, encoding)
    seen: dict[str, int] = {}
    for i, h in enumerate(header, 1):
        if h and h in seen:
            problem = problem or f"the column {h!r} appears twice (columns {seen[h]} and {i}); rename one"
        seen.setdefault(h, i)
    if problem:
        handle.close()
        raise InvalidInput("the header cannot be used", [Problem("file", f"line 1: {problem}")])
    names = [h or f"column_{i + 1}" for i, h in enumerate(header)]
    width = len(names)

    def rows() -> Iterator[tuple[int, dict[str, str] | Unreadable]]:
        nonlocal reader
        with handle:
            while True:
                start = lines.count + 1
                lines.taken.clear()
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    lines.skip_record(start)
                    reader = csv.reader(lines, strict=True)
                    hint = "a field over 10 MB, or a quote never closed" if "limit" in str(exc) else "check its quotes"
                    yield start, Unreadable("row", f"cannot be read as CSV ({exc}): {hint}")
                    continue
                if not any(v.strip() for v in values):
                    continue
                problem = _text_problem(values, encoding)
                if problem:
                    yield start, Unreadable("row", problem)
                elif len(values) < width or any(v.strip() for v in values[width:]):
                    yield start, Unreadable("row", f"{len(values)} values, but the header has {width} columns")
                else:
                    yield start, dict(zip(names, values, strict=False))

    return names, rows()


def _text_problem(values: list[str], encoding: str) -> str | None:
    joined = "".join(values)
    if "\x00" in joined:
        return "contains a NUL character"
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return f"holds bytes that are not {encoding} text; save the file as UTF-8 or give --encoding (e.g. cp1252)"
    return None


def import_file(
    ws: Workspace,
    path: Path,
    kind: str,
    *,
    mapping_path: Path | None = None,
    encoding: str = "utf-8",
    batch: int = BATCH,
    actor: str = "import",
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import ``path``; ``progress(line, lines)`` is told after each batch."""
    if kind not in KINDS:
        raise InvalidInput("unknown kind", [Problem("kind", f"one of {', '.join(KINDS)}")])
    began = time.perf_counter()
    header, rows = rows_with_lines(path, encoding)
    mapping = load(mapping_path, header, kind)
    digest, total = file_hash(path)
    run = _start(ws, path, kind, mapping, digest, encoding)
    summary = ImportSummary(run_id=run["id"], file=str(path), kind=kind, resumed_after_line=run["last_line"])
    if run["status"] == "done":
        summary.already_imported = True
        for name in ("rows_read", "created", "merged", "rejected"):
            setattr(summary, name, run[name])
        return summary
    claim = run["claim"]
    chunk: list[tuple[int, dict[str, str] | Unreadable]] = []
    for line, row in rows:
        if line <= run["last_line"]:
            continue
        chunk.append((line, row))
        if len(chunk) >= batch:
            _import_batch(ws, run["id"], claim, kind, mapping, chunk, actor)
            chunk = []
            if progress:
                progress(line, total)
    if chunk:
        _import_batch(ws, run["id"], claim, kind, mapping, chunk, actor)
    summary = _finish(ws, run["id"], claim, path, summary)
    if progress:
        progress(total, total)
    summary.seconds = round(time.perf_counter() - began, 2)
    return summary


def _start(ws: Workspace, path: Path, kind: str, mapping: ColumnMapping, digest: str, encoding: str) -> dict[str, Any]:
    """The run of this file, kind and mapping: found (and claimed, if unfinished) or begun."""
    # The encoding as Python names it (utf8 and UTF-8 are one), and nothing for UTF-8: runs
    # recorded before imports took an encoding keep being recognised.
    name = codecs.lookup(encoding).name.removesuffix("-sig")
    prefix = "" if name == "utf-8" else f"{name}\n"
    mapping_digest = hashlib.sha256(f"{prefix}{mapping.model_dump_json()}".encode()).hexdigest()
    now = ws.clock.now()
    claim = secrets.token_hex(16)
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
                if found.status == "done":
                    return dict(found._mapping)
                # Unfinished: killed, or still running in another process, which stops at its
                # next batch. Claimed and read in one statement, so no batch slips in between.
                taken = conn.execute(
                    update(import_runs)
                    .where(import_runs.c.id == found.id)
                    .values(claim=claim, updated_at=now)
                    .returning(*import_runs.c)
                ).one()
                return dict(taken._mapping)
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
                    claim=claim,
                )
                .returning(import_runs.c.id)
            ).scalar_one()
            return {"id": run_id, "status": "running", "last_line": 0, "claim": claim}
    except IntegrityError:
        raise Conflict(f"{path.name} is being imported by another process right now") from None


def _import_batch(
    ws: Workspace,
    run_id: int,
    claim: str,
    kind: str,
    mapping: ColumnMapping,
    chunk: list[tuple[int, dict[str, str] | Unreadable]],
    actor: str,
) -> None:
    now = ws.clock.now()
    region = ws.config.workspace.default_region
    rejected: list[dict[str, Any]] = []
    created = merged = 0
    good = []
    rows: list[tuple[int, dict[str, str]]] = []
    for line, row in chunk:
        if isinstance(row, Unreadable):
            rejected.append(_rejection(run_id, line, {}, InvalidInput(row.reason, [Problem(row.field, row.reason)])))
        else:
            rows.append((line, row))
    if kind == "leads":  # cleaned before the write transaction: live captures wait less
        for line, row in rows:
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
            for line, row in rows:
                try:
                    item = parse(kind, apply(mapping, row, person=False), mapping.date_format)
                    with conn.begin_nested():
                        import_row(ws, conn, kind, item, actor, accounts_seen)
                    created += 1
                except LeadflowError as exc:
                    accounts_seen.clear()  # a rolled-back savepoint may have taken an account with it
                    rejected.append(_rejection(run_id, line, row, exc))
        else:
            for line, row in rows:
                try:
                    event = EventIn.model_validate(apply(mapping, row, person=False))
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
        _progress(
            conn,
            run_id,
            claim,
            rows_read=import_runs.c.rows_read + len(chunk),
            created=import_runs.c.created + created,
            merged=import_runs.c.merged + merged,
            rejected=import_runs.c.rejected + len(rejected),
            last_line=chunk[-1][0],
            updated_at=now,
        )


def _progress(conn: Connection, run_id: int, holder: str, **values: Any) -> None:
    """Record the run's progress, if this process still holds it; else roll its batch back."""
    done = conn.execute(
        update(import_runs).where(import_runs.c.id == run_id, import_runs.c.claim == holder).values(**values)
    )
    if done.rowcount != 1:
        raise Conflict(
            "another import of this file took over; this one stops (the other carries on from its last committed row)"
        )


def _rejection(run_id: int, line: int, row: dict[str, str], exc: LeadflowError) -> dict[str, Any]:
    first = exc.problems[0] if exc.problems else Problem("row", exc.message)
    reason = "; ".join(f"{p.field}: {p.message}" for p in exc.problems) or exc.message
    return {"run_id": run_id, "line": line, "field": first.field[:100], "reason": reason[:500], "row": row}


def _finish(ws: Workspace, run_id: int, claim: str, path: Path, summary: ImportSummary) -> ImportSummary:
    with ws.transaction() as conn:
        _progress(conn, run_id, claim, status="done", finished_at=ws.clock.now(), claim=None)
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
    summary.rows_read, summary.created, summary.merged, summary.rejected = (
        run.rows_read,
        run.created,
        run.merged,
        run.rejected,
    )
    summary.rejections = [{"line": r["line"], "field": r["field"], "reason": r["reason"]} for r in rejections]
    return summary


def _inert(cell: str) -> str:
    """A cell a spreadsheet will show, not run: =, +, -, @ (and tab, CR) first get a quote."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _write_errors(path: Path, rejections: list[dict[str, Any]]) -> Path:
    target = path.with_name(path.name + ".errors.csv")
    columns = list(dict.fromkeys(k for r in rejections for k in r["row"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "field", "reason", *columns])
    for r in rejections:
        writer.writerow([r["line"], r["field"], r["reason"], *(_inert(r["row"].get(c, "")) for c in columns)])
    target.write_text(buffer.getvalue(), encoding="utf-8")
    return target
