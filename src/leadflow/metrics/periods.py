"""Reporting periods in the workspace's time zone, as UTC bounds the database can range-scan.

Bucketing happens by joining rows to a small table of periods (label, start, end) rather than
with date functions, so it is the same SQL on SQLite and PostgreSQL and correct across daylight
saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import String, literal, select, union_all

from leadflow.db.types import UtcDateTime
from leadflow.errors import InvalidInput, Problem

Grain = Literal["day", "week", "month", "quarter", "year"]
GRAINS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC


def _floor(day: date, grain: str) -> date:
    if grain == "day":
        return day
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _next(day: date, grain: str) -> date:
    if grain == "day":
        return day + timedelta(days=1)
    if grain == "week":
        return day + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def _label(day: date, grain: str) -> str:
    if grain == "day":
        return day.isoformat()
    if grain == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if grain == "month":
        return f"{day.year}-{day.month:02d}"
    if grain == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)


def split(start: date, end: date, grain: str, tz: str) -> list[Period]:
    """Periods of ``grain`` covering the days ``start`` (inclusive) to ``end`` (exclusive)."""
    if grain not in GRAINS:
        raise InvalidInput("unknown period", [Problem("grain", f"{grain!r} is not one of {', '.join(GRAINS)}")])
    if end <= start:
        raise InvalidInput("empty period", [Problem("to", "must be after from")])
    zone = ZoneInfo(tz)
    out = []
    day = _floor(start, grain)
    while day < end:
        following = _next(day, grain)
        lo, hi = max(day, start), min(following, end)
        out.append(
            Period(
                label=_label(day, grain),
                start=datetime.combine(lo, time(), zone).astimezone(UTC),
                end=datetime.combine(hi, time(), zone).astimezone(UTC),
            )
        )
        day = following
    return out


def bounds(start: date, end: date, tz: str) -> Period:
    """One period spanning the whole range."""
    zone = ZoneInfo(tz)
    return Period(
        label=f"{start.isoformat()}..{end.isoformat()}",
        start=datetime.combine(start, time(), zone).astimezone(UTC),
        end=datetime.combine(end, time(), zone).astimezone(UTC),
    )


def periods_table(periods: list[Period], name: str = "periods"):  # type: ignore[no-untyped-def]
    """A small table (label, p_start, p_end) to join rows to their period (a UNION ALL of rows,
    which both SQLite and PostgreSQL accept as a derived table)."""
    rows = [
        select(
            literal(p.label, String()).label("label"),
            literal(p.start, UtcDateTime()).label("p_start"),
            literal(p.end, UtcDateTime()).label("p_end"),
        )
        for p in periods
    ]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery(name)
