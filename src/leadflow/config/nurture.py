"""The ``nurture:`` section of the workspace file: email templates and sequences for leads that
are not ready yet (why they are not ready is the enrolment condition)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from leadflow.config.conditions import Condition
from leadflow.config.types import Duration, Id, Strict

_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")
_MAILBOX = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

EXIT_EVENTS = (
    "email_replied",
    "meeting_scheduled",
    "meeting_held",
    "email_unsubscribed",
    "email_bounced",
)


def _check_mailbox(value: str) -> str:
    if not _MAILBOX.match(value):
        raise ValueError("must be an email address, e.g. unsubscribe@example.com")
    return value


def _check_window(value: str) -> str:
    if not _WINDOW.match(value) or value[:5] >= value[6:]:
        raise ValueError("must look like '09:00-18:00' (start before end)")
    return value


class Template(Strict):
    """An email; ``subject`` and ``body`` are Jinja2 with the lead's fields (``{{ first_name }}``,
    ``{{ company }}``, ``{{ owner_name }}``...). Links in the body are tracked."""

    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1)


class WaitUntil(Strict):
    """Wait for an event (``event``, with a ``timeout``), or until a date: a fixed ``date`` or the
    date in one of the lead's fields (``field``, e.g. ``custom.follow_up_on``; no date: go on)."""

    event: str | None = Field(default=None, description="an activity type, e.g. email_opened")
    timeout: Duration | None = Field(default=None, description="go on without the event after this long")
    date: datetime | None = Field(default=None, description="a fixed moment, e.g. 2026-12-01T09:00:00Z")
    field: str | None = Field(default=None, description="a lead field holding a date, e.g. custom.follow_up_on")

    @model_validator(mode="after")
    def _one_kind(self) -> WaitUntil:
        kinds = [k for k in ("event", "date", "field") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("wait_until needs exactly one of event (with timeout), date or field")
        if self.event is not None and self.timeout is None:
            raise ValueError("wait_until an event needs a timeout (how long to wait at most)")
        if self.date is not None and self.date.tzinfo is None:
            raise ValueError("give the date with its time zone, e.g. 2026-12-01T09:00:00Z")
        return self


class Branch(Strict):
    if_: Condition = Field(alias="if")
    goto: Id = Field(description="the id of the step to go to when the condition holds")
    else_: Id | None = Field(default=None, alias="else", description="where to go otherwise (default: the next step)")


class Step(Strict):
    """One step; exactly one of the actions."""

    id: Id | None = None
    send: Id | None = Field(default=None, description="a template id")
    wait: Duration | None = None
    wait_until: WaitUntil | None = None
    branch: Branch | None = None
    task: str | None = Field(default=None, max_length=300, description="a task for the lead's owner")
    stage: Id | None = None
    exit: str | None = Field(default=None, max_length=100, description="end the sequence with this reason")

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [k for k in ("send", "wait", "wait_until", "branch", "task", "stage", "exit") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a step has exactly one of send, wait, wait_until, branch, task, stage, exit"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    @property
    def action(self) -> str:
        return next(k for k in ("send", "wait", "wait_until", "branch", "task", "stage", "exit") if getattr(self, k))


class Sequence(Strict):
    """Leads for whom ``when`` holds (and no sequence of higher priority does) are enrolled."""

    id: Id
    name: str | None = None
    description: str | None = None
    priority: int = Field(default=100, description="lower first; a lead is in one sequence at a time")
    when: Condition
    holdout: Annotated[float, Field(ge=0, le=0.5)] = Field(
        default=0.0, description="share of enrolled leads that get no message (to measure the effect)"
    )
    goal_stage: Id = Field(default="sql", description="conversion, for the enrolled-vs-holdout comparison")
    exit_on: list[str] = Field(default_factory=lambda: list(EXIT_EVENTS), description="activity types that end it")
    exit_stages: list[Id] = Field(
        default_factory=lambda: ["mql", "sql", "opportunity", "customer", "disqualified", "lost"],
        description="entering any of these ends it",
    )
    steps: list[Step] = Field(min_length=1)


class NurtureSection(Strict):
    base_url: str = Field(
        default="http://127.0.0.1:8000", description="where leadflow's tracking and unsubscribe links point"
    )
    unsubscribe_email: Annotated[str, AfterValidator(_check_mailbox)] | None = Field(
        default=None,
        description="the mailbox in List-Unsubscribe's mailto: (default: the From address, LEADFLOW_SMTP_FROM)",
    )
    send_window: Annotated[str, AfterValidator(_check_window)] = Field(
        default="09:00-18:00", description="in the lead's time zone (from its country; else the workspace's)"
    )
    send_days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"]
    )
    max_per_week: int = Field(default=2, ge=1, le=50, description="nurture emails to one lead in any 7 days")
    cooldown: Duration = Field(
        default_factory=lambda: timedelta(days=30), description="before a lead is enrolled again"
    )
    templates: dict[Id, Template] = Field(default_factory=dict)
    sequences: list[Sequence] = Field(default_factory=list)
