"""Import a CSV file of leads or events through the pipeline, in batches, exactly once.

Each batch is one transaction: its leads (through ``process_many``, the same steps as every other
entry point), its rejected rows, and the import's progress (the last line committed). So an
import killed at any point and started again resumes after the last committed line, and every
row lands exactly once. A file already imported (same content, kind and mapping) adds nothing.
Rejected rows are reported with their line number and reason while the good rows land, and at the
end are written to ``FILE.errors.csv``.

An import is history by default: each row is recorded as of its own time (its decisions, such as
scoring and qualification, made with the clock at that time), with the stages and owner it had,
and nothing is sent, scheduled or routed for it today — no owner notification, SLA clock, nurture
enrolment or webhook. ``live=True`` (``--live``) takes the rows as if captured now instead.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from leadflow import events as ev
from leadflow.capture.activity import record_event
from leadflow.capture.normalize import Capture
from leadflow.capture.schemas import EventIn
from leadflow.capture.service import prepare, problems_from_validation
from leadflow.db.tables import import_rejections, import_runs
from leadflow.errors import Conflict, InvalidInput, LeadflowError, Problem
from leadflow.imports.mapping import ColumnMapping, apply, date_fields, load, zone_of
from leadflow.imports.sales import (
    SALES_KINDS,
    Notes,
    OpportunityRow,
    OwnerBook,
    SalesContext,
    import_deals,
    import_row,
    parse,
)
from leadflow.pipeline import process_many
from leadflow.privacy import suppression
from leadflow.qualify.service import StageMove, change_stages
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
    delimiter: str = ","
    live: bool = False
    history: int = 0  # rows recorded as history: nothing sent, scheduled or routed for them
    stages: int = 0  # stage changes recorded at their own times
    counts: dict[str, int] = field(default_factory=dict)  # what else happened, by what
    warnings: list[dict[str, Any]] = field(default_factory=list)  # rows kept, with something to check
    undeclared_sources: dict[str, int] = field(default_factory=dict)  # sources not in leadflow.yaml
    unknown_owners: dict[str, int] = field(default_factory=dict)  # owners kept as written

    @property
    def landed(self) -> int:
        return self.created + self.merged

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


DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter the file is split by: ``,`` ``;`` tab or ``|``, from its first lines (the
    one that splits the header into the most columns and the next lines alike); ``,`` when unsure."""
    try:
        with path.open(newline="", encoding=_encoding(path, encoding), errors="replace") as f:
            sample = f.read(1 << 16)
    except LookupError:
        raise InvalidInput(
            "unknown encoding", [Problem("encoding", f"{encoding!r} is not an encoding Python knows")]
        ) from None
    if not sample:
        return ","
    try:
        found = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        found = None
    header = sample.splitlines()[0] if sample.splitlines() else ""
    counts = {d: header.count(d) for d in DELIMITERS}
    if found in DELIMITERS and counts[found] > 0:
        return found
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def rows_with_lines(
    path: Path, encoding: str = "utf-8", delimiter: str = ","
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
    reader = csv.reader(lines, strict=True, delimiter=delimiter)
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
                    reader = csv.reader(lines, strict=True, delimiter=delimiter)
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
    delimiter: str | None = None,
    live: bool = False,
    batch: int = BATCH,
    actor: str = "import",
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import ``path``; ``progress(line, lines)`` is told after each batch. Rows are history
    unless ``live``; the delimiter is sniffed unless given."""
    if kind not in KINDS:
        raise InvalidInput("unknown kind", [Problem("kind", f"one of {', '.join(KINDS)}")])
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InvalidInput("bad delimiter", [Problem("delimiter", "one character, e.g. ';' or '\\t' (tab)")])
    began = time.perf_counter()
    delimiter = delimiter or sniff_delimiter(path, encoding)
    header, rows = rows_with_lines(path, encoding, delimiter)
    mapping = load(mapping_path, header, kind, delimiter=delimiter)
    if kind == "leads":
        mapping = _check_stages(ws, mapping, recognised=mapping_path is None)
    digest, total = file_hash(path)
    run = _start(ws, path, kind, mapping, digest, encoding, delimiter)
    summary = ImportSummary(
        run_id=run["id"],
        file=str(path),
        kind=kind,
        resumed_after_line=run["last_line"],
        delimiter=delimiter,
        live=live,
    )
    if run["status"] == "done":
        summary.already_imported = True
        for name in ("rows_read", "created", "merged", "rejected"):
            setattr(summary, name, run[name])
        return summary
    claim = run["claim"]
    job = _Job(
        ws, run["id"], claim, kind, mapping, actor, live, Notes(), zone_of(mapping, ws.config.workspace.timezone)
    )
    chunk: list[tuple[int, dict[str, str] | Unreadable]] = []
    for line, row in rows:
        if line <= run["last_line"]:
            continue
        chunk.append((line, row))
        if len(chunk) >= batch:
            _import_batch(job, chunk)
            chunk = []
            if progress:
                progress(line, total)
    if chunk:
        _import_batch(job, chunk)
    summary = _finish(ws, run["id"], claim, path, summary)
    summary.history, summary.stages = job.history, job.stages
    summary.counts = dict(job.notes.counts)
    summary.warnings = job.notes.warnings
    declared = {s.id for s in ws.config.sources}
    summary.undeclared_sources = {k: n for k, n in sorted(job.sources.items()) if k not in declared}
    summary.unknown_owners = dict(sorted(job.owners.unknown.items())) if job.owners else {}
    if progress:
        progress(total, total)
    summary.seconds = round(time.perf_counter() - began, 2)
    return summary


# Stage names of CRM exports (lower-cased, letters and digits only) -> leadflow stage: HubSpot
# lifecycle stages (labels and internal values), Salesforce lead statuses, won/lost outcomes.
STAGE_WORDS = {
    "subscriber": "lead",
    "lead": "lead",
    "new": "lead",
    "opennotcontacted": "lead",
    "workingcontacted": "prospect",
    "contacted": "prospect",
    "prospect": "prospect",
    "marketingqualifiedlead": "mql",
    "mql": "mql",
    "salesqualifiedlead": "sql",
    "sql": "sql",
    "qualified": "sql",
    "opportunity": "opportunity",
    "closedconverted": "opportunity",
    "customer": "customer",
    "evangelist": "customer",
    "won": "customer",
    "closednotconverted": "disqualified",
    "unqualified": "disqualified",
    "disqualified": "disqualified",
    "lost": "lost",
    "nurture": "nurture",
    "recycled": "recycled",
}


def _stages(ws: Workspace) -> list[str]:
    return [*ws.rules.stages.order, *ws.rules.stages.side]


def _check_stages(ws: Workspace, mapping: ColumnMapping, *, recognised: bool) -> ColumnMapping:
    """``reached.<stage>`` must name a stage of this workspace (recognised export headers for
    stages it does not have are left out)."""
    known = _stages(ws)
    unknown = [t for t in mapping.columns if t.startswith("reached.") and t.removeprefix("reached.") not in known]
    if unknown and recognised:
        return mapping.model_copy(update={"columns": {t: c for t, c in mapping.columns.items() if t not in unknown}})
    if unknown:
        raise InvalidInput(
            "unknown stage",
            [Problem(f"mapping.columns.{t}", f"not a stage; stages: {', '.join(known)}") for t in unknown],
        )
    return mapping


def stage_of(value: Any, stages: list[str]) -> str:
    """An imported stage as a stage of this workspace: its id, or a CRM's name for it."""
    text = str(value).strip()
    if text in stages:
        return text
    word = STAGE_WORDS.get("".join(ch for ch in text.lower() if ch.isalnum()))
    if word in stages:
        return word
    raise InvalidInput(
        "unknown stage",
        [Problem("stage", f"{text!r} is not a stage; stages: {', '.join(stages)} (map it under values: stage:)")],
    )


@dataclass
class _Job:
    """One import's settings and what it has noticed so far."""

    ws: Workspace
    run_id: int
    claim: str
    kind: str
    mapping: ColumnMapping
    actor: str
    live: bool
    notes: Notes
    zone: Any
    history: int = 0
    stages: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    owners: OwnerBook | None = None
    stage_ids: list[str] = field(default_factory=list)  # the workspace's, for every row's stage

    def __post_init__(self) -> None:
        self.stage_ids = _stages(self.ws)

    @property
    def row_actor(self) -> str:
        return self.actor if self.live else ev.HISTORY


# Mapping settings added after runs were first recorded: left out of the run's identity when
# unused, so those runs keep being recognised.
_NEWER = ("date_formats", "timezone")


def _start(
    ws: Workspace, path: Path, kind: str, mapping: ColumnMapping, digest: str, encoding: str, delimiter: str
) -> dict[str, Any]:
    """The run of this file, kind and mapping: found (and claimed, if unfinished) or begun."""
    # The encoding as Python names it (utf8 and UTF-8 are one), and nothing for UTF-8 and commas:
    # runs recorded before imports took an encoding or a delimiter keep being recognised.
    name = codecs.lookup(encoding).name.removesuffix("-sig")
    prefix = ("" if name == "utf-8" else f"{name}\n") + ("" if delimiter == "," else f"delimiter {delimiter!r}\n")
    mapping_digest = hashlib.sha256(
        f"{prefix}{mapping.model_dump_json(exclude={n for n in _NEWER if not getattr(mapping, n)})}".encode()
    ).hexdigest()
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


def _import_batch(job: _Job, chunk: list[tuple[int, dict[str, str] | Unreadable]]) -> None:
    ws, run_id, kind, mapping = job.ws, job.run_id, job.kind, job.mapping
    now = ws.clock.now()
    rejected: list[dict[str, Any]] = []
    created = merged = 0
    rows: list[tuple[int, dict[str, str]]] = []
    for line, row in chunk:
        if isinstance(row, Unreadable):
            rejected.append(_rejection(run_id, line, {}, InvalidInput(row.reason, [Problem(row.field, row.reason)])))
        else:
            rows.append((line, row))
    dates = date_fields(kind, mapping)
    with ws.transaction() as conn:
        if job.owners is None:
            job.owners = OwnerBook(conn)
        if kind == "leads":
            # cleaned before anything is written: bad rows are rejected, good ones go in one pass
            good: list[tuple[int, Capture, dict[str, Any]]] = []
            for line, row in rows:
                try:
                    good.append((line, *_lead_row(job, row, dates, now)))
                except InvalidInput as exc:
                    rejected.append(_rejection(run_id, line, row, exc))
            # an erased person's email or phone: the row is refused (or, with fresh consent, new)
            refused = suppression.screen(ws, conn, [c for _, c, _ in good])
            if refused:
                raw = dict(rows)
                rejected += [_rejection(run_id, good[i][0], raw[good[i][0]], exc) for i, exc in refused.items()]
                good = [g for i, g in enumerate(good) if i not in refused]
            results = process_many(ws, conn, [c for _, c, _ in good], actor=job.actor)
            moves: list[StageMove] = []
            lines: dict[int, int] = {}
            for (line, capture, extra), result in zip(good, results, strict=True):
                created += result.created
                merged += not result.created
                job.history += capture.history
                if source := capture.fields.get("source"):
                    job.sources[source] += 1
                for move in _stage_moves(job, result.lead_id, capture, extra):
                    lines[len(moves)] = line
                    moves.append(move)
            if moves:
                written = {r.lead_id: r.lead for r in results}  # the latest row of each lead
                done, skipped = change_stages(ws, conn, moves, strict=False, leads=written)
                job.stages += len(done)
                for item in skipped:
                    job.notes.line = lines[item.index]
                    job.notes.warn("stage", f"not moved to {item.move.to!r}: {item.why}")
        elif kind == "opportunities":
            ctx = SalesContext(ws, conn, job.row_actor, job.notes, job.owners)
            deals: list[tuple[int, OpportunityRow]] = []
            for line, row in rows:
                try:
                    item = parse(kind, apply(mapping, row, person=False, dates=dates, zone=job.zone))
                    assert isinstance(item, OpportunityRow)
                    deals.append((line, item))
                except LeadflowError as exc:
                    rejected.append(_rejection(run_id, line, row, exc))
            outcomes, failed = import_deals(ctx, deals)
            for _, outcome in outcomes:
                created += outcome == "created"
                merged += outcome != "created"
            job.history += 0 if job.live else len(outcomes)
            raw = dict(rows)
            rejected += [_rejection(run_id, line, raw[line], exc) for line, exc in failed]
        elif kind in SALES_KINDS:
            ctx = SalesContext(ws, conn, job.row_actor, job.notes, job.owners)
            for line, row in rows:
                job.notes.line = line
                try:
                    item = parse(kind, apply(mapping, row, person=False, dates=dates, zone=job.zone))
                    with conn.begin_nested():
                        outcome = import_row(ctx, item)
                    created += outcome == "created"
                    merged += outcome != "created"
                    job.history += not job.live
                except LeadflowError as exc:
                    ctx.accounts.clear()  # a rolled-back savepoint may have taken an account with it
                    rejected.append(_rejection(run_id, line, row, exc))
        else:
            for line, row in rows:
                try:
                    event = EventIn.model_validate(
                        apply(mapping, row, person=False, dates=dates, zone=job.zone, custom_as="data")
                    )
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
                        record_event(ws, conn, event, actor=job.row_actor)
                    created += 1
                    job.history += not job.live
                except Conflict as exc:
                    if exc.problems and exc.problems[0].field == "external_id":
                        merged += 1  # recorded before: the same activity is recorded once
                        job.notes.counts["activities recorded before (same external_id)"] += 1
                    else:
                        rejected.append(_rejection(run_id, line, row, exc))
                except LeadflowError as exc:
                    rejected.append(_rejection(run_id, line, row, exc))
        if rejected:
            conn.execute(insert(import_rejections), rejected)
        _progress(
            conn,
            run_id,
            job.claim,
            rows_read=import_runs.c.rows_read + len(chunk),
            created=import_runs.c.created + created,
            merged=import_runs.c.merged + merged,
            rejected=import_runs.c.rejected + len(rejected),
            last_line=chunk[-1][0],
            updated_at=now,
        )


def _lead_row(job: _Job, row: dict[str, str], dates: set[str], now: Any) -> tuple[Capture, dict[str, Any]]:
    """A CSV row as a clean capture, and what the import says beyond the lead's own fields: its
    stage, the times it reached stages, its owner."""
    ws = job.ws
    payload = apply(job.mapping, row, dates=dates, zone=job.zone)
    extra: dict[str, Any] = {"reached": payload.pop("reached", None) or {}}
    if "stage" in payload:
        extra["stage"] = stage_of(payload.pop("stage"), job.stage_ids)
    extra["stage_at"] = payload.pop("stage_at", None)
    owner = payload.pop("owner", None)
    capture = prepare(payload, default_region=ws.config.workspace.default_region, now=now, rules=ws.rules.capture)
    capture.history = not job.live
    capture.stage_given = bool(extra.get("stage") or extra["reached"])
    if owner is not None:
        assert job.owners is not None
        capture.owner_id, capture.team_id = job.owners.resolve(str(owner))
    return capture, extra


def _stage_moves(job: _Job, lead_id: int, capture: Capture, extra: dict[str, Any]) -> list[StageMove]:
    """The stages an imported row reached, each at its own time, in order; the stage it is in
    last, at ``stage_at``, else the latest time known (its last stage date, else its own time)."""
    actor = job.row_actor
    reached = sorted(extra["reached"].items(), key=lambda item: item[1])
    moves = [StageMove(lead_id, stage, at, f"imported: reached {stage}", actor) for stage, at in reached]
    final = extra.get("stage")
    if final and final not in extra["reached"]:
        at = extra["stage_at"] or max([capture.occurred_at, *(at for _, at in reached)])
        moves.append(StageMove(lead_id, final, at, f"imported: stage {final}", actor))
    return moves


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
            summary.error_file = str(_write_errors(path, rejections, ws.path / "imports" if ws.path else None))
        conn.execute(delete(import_rejections).where(import_rejections.c.run_id == run_id))
        if run.created + run.merged == 0:
            # nothing landed: not a run to remember, so the file can be imported once it is fixed
            conn.execute(delete(import_runs).where(import_runs.c.id == run_id))
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


def _write_errors(path: Path, rejections: list[dict[str, Any]], elsewhere: Path | None = None) -> Path:
    """``FILE.errors.csv`` beside the file; in ``elsewhere`` (the workspace's ``imports/``) when it
    cannot be written there (a shared, read-only data folder)."""
    target = path.with_name(path.name + ".errors.csv")
    columns = list(dict.fromkeys(k for r in rejections for k in r["row"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "field", "reason", *columns])
    for r in rejections:
        writer.writerow([r["line"], r["field"], r["reason"], *(_inert(r["row"].get(c, "")) for c in columns)])
    try:
        target.write_text(buffer.getvalue(), encoding="utf-8")
    except OSError:
        if elsewhere is None:
            raise
        elsewhere.mkdir(parents=True, exist_ok=True)
        target = elsewhere / target.name
        target.write_text(buffer.getvalue(), encoding="utf-8")
    return target
