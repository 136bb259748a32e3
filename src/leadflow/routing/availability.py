"""Who can take a lead now: pure functions over an owner's settings and the time.

Out of office, working hours in the owner's own time zone, languages and skills. Each refusal has
a reason, so the assignment trace says why every candidate was skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MINUTES = 60


@dataclass(frozen=True)
class Candidate:
    """An owner as routing sees them (from the owners table)."""

    id: str
    team: str | None
    position: int
    weight: int = 1
    timezone: str = "UTC"
    capacity_day: int | None = None
    capacity_week: int | None = None
    languages: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    working_hours: Mapping[int, tuple[int, int]] | None = None
    out_of_office: tuple[tuple[date, date], ...] = ()
    email: str | None = None
    manager: str | None = None
    name: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], default_timezone: str) -> Candidate:
        hours = row.get("working_hours")
        return cls(
            id=row["id"],
            team=row.get("team_id"),
            position=row.get("position") or 0,
            weight=row.get("weight") or 1,
            timezone=row.get("timezone") or default_timezone,
            capacity_day=row.get("capacity_day"),
            capacity_week=row.get("capacity_week"),
            languages=frozenset(x.lower() for x in row.get("languages") or ()),
            skills=frozenset(row.get("skills") or ()),
            working_hours={int(k): (int(v[0]), int(v[1])) for k, v in hours.items()} if hours else None,
            out_of_office=tuple(
                (date.fromisoformat(a["from"]), date.fromisoformat(a["to"])) for a in row.get("out_of_office") or ()
            ),
            email=row.get("email"),
            manager=row.get("manager_id"),
            name=row.get("name") or row["id"],
        )

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(ZoneInfo(self.timezone))

    def day(self, moment: datetime) -> date:
        return self.local(moment).date()

    def week(self, moment: datetime) -> date:
        day = self.day(moment)
        return day - timedelta(days=day.weekday())

    def absent(self, moment: datetime) -> bool:
        day = self.day(moment)
        return any(start <= day <= end for start, end in self.out_of_office)

    def working(self, moment: datetime, default_hours: Mapping[int, tuple[int, int]]) -> bool:
        local = self.local(moment)
        window = (self.working_hours or default_hours).get(local.weekday())
        if window is None:
            return False
        minute = local.hour * MINUTES + local.minute
        return window[0] <= minute < window[1]


@dataclass
class Screening:
    eligible: list[Candidate] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    off_hours: list[Candidate] = field(default_factory=list)  # eligible but not working right now


def screen(
    candidates: Iterable[Candidate],
    *,
    at: datetime,
    default_hours: Mapping[int, tuple[int, int]],
    language: str | None = None,
    skills: Sequence[str] = (),
) -> Screening:
    """Sort candidates into those who can take the lead now, those who could but are off duty,
    and those who cannot (with why)."""
    out = Screening()
    for c in candidates:
        if c.absent(at):
            out.skipped.append({"owner": c.id, "why": "out of office"})
        elif language and c.languages and language.lower() not in c.languages:
            out.skipped.append({"owner": c.id, "why": f"does not speak {language}"})
        elif language and not c.languages:
            out.skipped.append({"owner": c.id, "why": f"no languages listed (needs {language})"})
        elif missing := [s for s in skills if s not in c.skills]:
            out.skipped.append({"owner": c.id, "why": f"lacks skill {', '.join(missing)}"})
        elif not c.working(at, default_hours):
            out.off_hours.append(c)
        else:
            out.eligible.append(c)
    return out
