"""Response deadlines and what happens around them. Pure functions.

The first SLA policy whose condition holds sets the deadline for the first outbound touch,
counted in business hours when the policy says so. Around the deadline: a reminder before it,
then escalation steps after it (notify the manager, reassign, return to the pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from leadflow.config.conditions import Predicate, compile_condition, describe
from leadflow.config.workspace import SlaPolicy, SlaSection


@dataclass(frozen=True)
class SlaDecision:
    policy: str
    due_at: datetime
    why: str


@dataclass(frozen=True)
class Step:
    at: datetime
    kind: str  # remind | escalate
    action: str  # remind | notify_manager | reassign | return_to_pool


def add_business_time(
    start: datetime, duration: timedelta, hours: Mapping[int, tuple[int, int]], tz: str, holidays: frozenset[date]
) -> datetime:
    """``start`` plus ``duration`` counted in business time: whole days are business days (1d from
    Friday 15:00 is Monday 15:00), the rest is working hours. A start outside business hours
    counts from the next opening."""
    zone = ZoneInfo(tz)
    week = tuple(sorted(hours.items()))

    def window(day: date) -> tuple[datetime, datetime] | None:
        return _window(day, week, tz, holidays)

    def next_open(moment: datetime) -> datetime:
        for _ in range(_MAX_DAYS):
            found = window(moment.date())
            if found is not None and moment < found[1]:
                return max(moment, found[0])
            moment = datetime.combine(moment.date() + timedelta(days=1), time(), zone)
        raise ValueError("no business hours to count the deadline in")

    local = next_open(start.astimezone(zone))
    for _ in range(duration.days):
        day = local.date() + timedelta(days=1)
        for _ in range(_MAX_DAYS):
            if window(day) is not None:
                break
            day += timedelta(days=1)
        begin, end = window(day) or (local, local)
        local = min(max(datetime.combine(day, local.timetz().replace(tzinfo=None), zone), begin), end)
    remaining = duration - timedelta(days=duration.days)
    while remaining > timedelta(0):
        local = next_open(local)
        _, close_at = window(local.date()) or (local, local)
        if local + remaining <= close_at:
            return (local + remaining).astimezone(start.tzinfo)
        remaining -= close_at - local
        local = close_at
    return local.astimezone(start.tzinfo)


@lru_cache(maxsize=8192)
def _window(
    day: date, week: tuple[tuple[int, tuple[int, int]], ...], tz: str, holidays: frozenset[date]
) -> tuple[datetime, datetime] | None:
    """A day's business hours as aware times (None: closed); the same few days come up for
    every lead, so they are worked out once."""
    minutes = dict(week).get(day.weekday()) if day not in holidays else None
    if minutes is None:
        return None
    midnight = datetime.combine(day, time(), ZoneInfo(tz))
    return midnight + timedelta(minutes=minutes[0]), midnight + timedelta(minutes=minutes[1])


_MAX_DAYS = 3660  # ten years: a calendar with no business day in it is a configuration error


class SlaPolicies:
    def __init__(self, section: SlaSection, workspace_tz: str) -> None:
        self._policies: list[tuple[SlaPolicy, Predicate, str]] = [
            (p, compile_condition(p.when), p.description or describe(p.when)) for p in section.policies
        ]
        self._by_id = {p.id: p for p in section.policies}
        bh = section.business_hours
        self.hours = bh.hours
        self.tz = bh.timezone or workspace_tz
        self.holidays = frozenset(bh.holidays)

    def deadline(self, lead: Mapping[str, Any], start: datetime) -> SlaDecision | None:
        for policy, holds, why in self._policies:
            if holds(lead):
                return SlaDecision(policy=policy.id, due_at=self.due(policy, start), why=why)
        return None

    def due(self, policy: SlaPolicy, start: datetime) -> datetime:
        if policy.business_hours:
            return add_business_time(start, policy.first_touch, self.hours, self.tz, self.holidays)
        return start + policy.first_touch

    def steps(self, policy_id: str | None, due: datetime | None) -> list[Step]:
        """Reminder and escalations for a deadline, in time order (the same list every time it
        is asked, so a step number means one step)."""
        policy = self._by_id.get(policy_id or "")
        if policy is None or due is None:
            return []
        out = [Step(due - policy.remind_before, "remind", "remind")] if policy.remind_before is not None else []
        out += [Step(due + step.after, "escalate", step.action) for step in policy.escalate]
        return sorted(out, key=lambda s: s.at)

    def policy(self, policy_id: str | None) -> SlaPolicy | None:
        return self._by_id.get(policy_id or "")
