"""Run the simulated business through the real pipeline, in simulated time.

A discrete-event simulation: lead arrivals, web visits, rep follow-ups, emails, meetings,
opportunities and their outcomes are actions on a time-ordered queue. Each action calls the same
service functions the API calls (``process_many``, ``record_activities``, ``track_page_views``,
``change_stage``, ``create_opportunity``, ``close_opportunity``, ``record_spend``), batched and
committed one simulated day at a time. The same seed and end date give the same business.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from faker import Faker
from sqlalchemy import Connection

from leadflow.capture.normalize import Capture, normalise
from leadflow.capture.schemas import LeadIn
from leadflow.clock import FrozenClock
from leadflow.errors import LeadflowError
from leadflow.jobs.worker import TASKS, run_task
from leadflow.opportunities.service import close_opportunity, create_opportunity
from leadflow.pipeline import Activity, LeadResult, process_many, record_activities
from leadflow.qualify.service import change_stage
from leadflow.routing import service as routing_service
from leadflow.simulate import business as biz
from leadflow.sources.service import next_month, record_spend
from leadflow.tracking.service import PageView, track_page_views
from leadflow.workspace import Workspace

_FORM_ANSWERS: dict[str, tuple[Any, ...]] = {
    "use_case": ("sales forecasting", "marketing attribution", "supply chain", "finance reporting"),
    "timeline": ("now", "this_quarter", "next_quarter", "later"),
    "goals": ("grow revenue", "cut reporting time", "one view of the customer"),
    "business_type": ("b2b", "b2c", "marketplace"),
    "service_interest": ("implementation", "training", "analytics review"),
    "requirement": ("dashboards for 20 users", "data warehouse connector", "embedded analytics"),
    "quantity": (5, 10, 25, 50, 100),
    "budget_range": ("<10k", "10k-50k", "50k-100k", ">100k"),
    "location": ("Berlin", "London", "Amsterdam", "Remote"),
    "dates": ("2026-06-01..2026-06-03",),
    "party_size": (2, 4, 8),
    "destination": ("Lisbon", "Vienna"),
}

KIND_ORDER = ("spend", "visit", "capture", "activity", "stage", "opportunity", "close")
WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Company:
    name: str
    domain: str
    industry: str
    employees: int
    country: str
    locale: str
    fit: float


@dataclass
class Person:
    """What the simulator knows about a lead that the pipeline does not: how likely they are to buy."""

    propensity: float
    email: str
    company: Company
    source: str
    context: str
    web: bool
    visitor_id: str | None
    consent_email: bool
    lead_id: int | None = None
    owner: str | None = None
    referred_by: int | None = None
    names: dict[str, str] = field(default_factory=dict)


@dataclass(order=True)
class Action:
    at: datetime
    seq: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False)


@dataclass
class Summary:
    start: date
    end: date
    seed: int
    leads: int = 0
    submissions: int = 0
    page_views: int = 0
    activities: int = 0
    stage_changes: int = 0
    opportunities: int = 0
    won: int = 0
    lost: int = 0
    spend: Decimal = Decimal("0")
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal | date) else v) for k, v in self.__dict__.items()}


def _month_start(day: date, months_back: int) -> date:
    total = day.year * 12 + day.month - 1 - months_back
    return date(total // 12, total % 12 + 1, 1)


def _pick(rng: random.Random, weighted: Any) -> Any:
    items = list(weighted)
    return rng.choices(items, weights=[w[-1] for w in items])[0]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class Simulation:
    def __init__(self, ws: Workspace, *, months: int, seed: int, end: date | None = None) -> None:
        if months < 1:
            raise LeadflowError("--months must be at least 1")
        self.rng = random.Random(seed)
        self.seed = seed
        self.end = end or datetime.now(UTC).date()
        # `months` whole calendar months before `end`'s month, then the days of that month up to
        # `end` (none when `end` is a 1st): a demo on the 2nd still shows a year of business.
        self.start = _month_start(self.end.replace(day=1), months)
        self.end_at = datetime.combine(self.end, datetime.min.time(), UTC)
        self.tz = ZoneInfo(ws.config.workspace.timezone)
        self.clock = FrozenClock(datetime.combine(self.start, datetime.min.time(), UTC))
        self.ws = ws.with_clock(self.clock)
        self.ws.quiet = True  # made-up leads: nobody gets an email about them
        self.queue: list[Action] = []
        self.seq = itertools.count()
        self.fakers: dict[str, Faker] = {}
        self.companies: list[Company] = []
        self.people: dict[int, Person] = {}
        self.visitor_ids = itertools.count(1)
        self.summary = Summary(start=self.start, end=self.end, seed=seed)
        owners = {o.id for o in ws.config.owners if o.active}
        self.rep_speed = {o: biz.REP_SPEED_MINUTES.get(o, 40) for o in owners}
        self.rep_capacity = {o: biz.REP_DAILY_CAPACITY.get(o, 10) for o in owners}
        self.first_touches: dict[tuple[str, date], int] = {}
        self.sources = [s for s in biz.SOURCES]

    # -- scheduling ----------------------------------------------------------------------------

    def at(self, when: datetime, kind: str, payload: Any) -> None:
        if when < self.end_at:
            heapq.heappush(self.queue, Action(when, next(self.seq), kind, payload))

    def faker(self, locale: str) -> Faker:
        f = self.fakers.get(locale)
        if f is None:
            f = Faker(locale)
            f.seed_instance(self.seed * 1000 + len(self.fakers))
            self.fakers[locale] = f
        return f

    def working_time(self, when: datetime, delay: timedelta) -> datetime:
        """``when`` + ``delay`` counted in reps' working hours (weekdays, 8-18 local)."""
        local = when.astimezone(self.tz)
        remaining = delay
        lo, hi = biz.WORKDAY
        for _ in range(60):
            if local.weekday() >= 5 or local.hour >= hi:
                nxt = (local + timedelta(days=1)).replace(hour=lo, minute=0, second=0, microsecond=0)
                while nxt.weekday() >= 5:
                    nxt += timedelta(days=1)
                local = nxt
                continue
            if local.hour < lo:
                local = local.replace(hour=lo, minute=0, second=0, microsecond=0)
            day_end = local.replace(hour=hi, minute=0, second=0, microsecond=0)
            if local + remaining <= day_end:
                return (local + remaining).astimezone(UTC)
            remaining -= day_end - local
            local = day_end
        return (local + remaining).astimezone(UTC)

    def within_capacity(self, owner: str, when: datetime) -> datetime:
        """Push a first touch to the rep's next working day while that day is full."""
        for _ in range(30):
            day = when.astimezone(self.tz).date()
            used = self.first_touches.get((owner, day), 0)
            if used < self.rep_capacity.get(owner, 10):
                self.first_touches[(owner, day)] = used + 1
                return when
            start = datetime.combine(day + timedelta(days=1), datetime.min.time(), self.tz).replace(hour=biz.WORKDAY[0])
            when = self.working_time(start.astimezone(UTC), timedelta(minutes=self.rng.uniform(0, 120)))
        return when

    def arrival_time(self, month: date) -> datetime:
        """A moment in the month, weighted to weekdays and office hours (workspace time zone)."""
        days = (next_month(month) - month).days
        rng = self.rng
        while True:
            day = month + timedelta(days=rng.randrange(days))
            if day.weekday() < 5 or rng.random() < 0.3:
                break
        hour = min(23, max(0, int(rng.gauss(13, 3.5))))
        local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=self.tz)
        return local.astimezone(UTC)

    # -- the business --------------------------------------------------------------------------

    def company(self) -> Company:
        rng = self.rng
        if self.companies and rng.random() < 0.35:
            return rng.choice(self.companies)
        country, locale, country_fit, _ = _pick(rng, biz.COUNTRIES)
        industry, industry_fit, _ = _pick(rng, biz.INDUSTRIES)
        employees, size_fit, _ = _pick(rng, biz.SIZES)
        f = self.faker(locale)
        stem = f.last_name()
        name = f"{stem} {rng.choice(biz.COMPANY_WORDS)} {rng.choice(biz.COMPANY_SUFFIXES[locale])}"
        ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode().lower()
        word = "".join(ch for ch in ascii_stem if ch.isalnum()) or "company"
        domain = f"{word}{rng.randrange(10, 999)}.{ {'DE': 'de', 'AT': 'at', 'CH': 'ch', 'GB': 'co.uk', 'FR': 'fr', 'NL': 'nl', 'IN': 'in', 'BR': 'com.br'}.get(country, 'com') }"
        company = Company(
            name=name,
            domain=domain,
            industry=industry,
            employees=max(1, int(employees * rng.lognormvariate(0, 0.5))),
            country=country,
            locale=locale,
            fit=country_fit + industry_fit + size_fit,
        )
        self.companies.append(company)
        return company

    def new_person(self, source: biz.SourceProfile, when: datetime, *, referred_by: int | None = None) -> None:
        person, payload = self.person_and_payload(source, referred_by=referred_by)
        if person.web:
            self.pre_capture_visits(person, when, payload.get("campaign"))
        self.at(when, "capture", (person, payload))

    def person_and_payload(
        self, source: biz.SourceProfile, *, referred_by: int | None = None
    ) -> tuple[Person, dict[str, Any]]:
        """A person from this source, and the form they submit (with the blanks real forms have)."""
        rng = self.rng
        company = self.company()
        f = self.faker(company.locale)
        first, last = f.first_name(), f.last_name()
        title, title_fit, _ = _pick(rng, biz.TITLES)
        context = rng.choices(list(source.contexts), weights=list(source.contexts.values()))[0]
        ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode().lower()
        local = (
            re.sub(r"\.+", ".", "".join(ch for ch in ascii_name if ch.isalnum() or ch == ".")).strip(".") or "contact"
        )
        if rng.random() < source.free_mail_share or title in ("Student", "Intern"):
            email = f"{local}{rng.randrange(100)}@{rng.choice(['gmail.com', 'yahoo.com', 'outlook.com', 'gmx.de', 'hotmail.com'])}"
        else:
            email = f"{local}@{company.domain}"
        propensity = _sigmoid(
            -2.2 + source.quality + company.fit + title_fit + biz.CONTEXT_INTENT.get(context, 0) + rng.gauss(0, 0.6)
        )
        web = source.web
        person = Person(
            propensity=propensity,
            email=email,
            company=company,
            source=source.id,
            context=context,
            web=web,
            visitor_id=f"v{self.seed}-{next(self.visitor_ids)}" if web else None,
            consent_email=rng.random() < (0.85 if context != "call" else 0.3),
            referred_by=referred_by,
        )
        campaign = rng.choice(source.campaigns) if source.campaigns else None
        payload: dict[str, Any] = {
            "email": email if rng.random() > 0.03 else email.upper(),
            "first_name": first if rng.random() > 0.05 else first.lower(),
            "last_name": last,
            "company": company.name,
            "website": f"https://www.{company.domain}" if rng.random() < 0.4 else None,
            "title": title,
            "industry": company.industry if rng.random() < 0.7 else None,
            "employees": company.employees if rng.random() < 0.6 else None,
            "country": company.country,
            "phone": self.phone(company.country) if rng.random() < 0.55 else None,
            "source": source.id,
            "medium": source.utm_medium,
            "campaign": campaign,
            "capture_context": context,
            "visitor_id": person.visitor_id,
            "landing_page": f"/{context}" if web else None,
            "consent": {"email": person.consent_email, "lawful_basis": "consent", "wording": "Send me product news"},
        }
        if context in ("demo", "quote", "consultation") and rng.random() < 0.7:
            custom: dict[str, Any] = {"timeline": rng.choice(["now", "this_quarter", "next_quarter", "later"])}
            if rng.random() < 0.6:
                custom["use_case"] = rng.choice(
                    ["sales forecasting", "marketing attribution", "supply chain", "finance reporting"]
                )
            if context == "quote":
                custom["budget"] = int(rng.choice([5_000, 15_000, 30_000, 60_000]) * (0.5 + propensity))
            payload["custom"] = custom
        payload = {k: v for k, v in payload.items() if v is not None}
        person.names = {"first_name": first, "last_name": last, "title": title or "Analyst"}
        self.fill_form(payload, {**person.names, "company": company.name})
        return person, payload

    def fill_form(self, payload: dict[str, Any], person: dict[str, str]) -> None:
        """Real forms make people fill the fields their context requires: so does the simulation."""
        form = self.ws.rules.capture.forms.get(payload.get("capture_context", ""))
        if form is None:
            return
        rng = self.rng
        custom = payload.setdefault("custom", {})
        for name in form.required:
            if name.startswith("custom."):
                key = name[7:]
                if key not in custom:
                    custom[key] = rng.choice(_FORM_ANSWERS.get(key, ("yes", "to be discussed")))
            elif name not in payload and name in person:
                payload[name] = person[name]
        if not custom:
            payload.pop("custom")

    def phone(self, country: str) -> str:
        rng = self.rng
        prefix, digits = {
            "DE": ("+49 30", 8),
            "GB": ("+44 20", 8),
            "US": ("+1 415", 7),
            "FR": ("+33 1", 8),
            "NL": ("+31 20", 7),
            "AT": ("+43 1", 7),
            "CH": ("+41 44", 7),
            "IN": ("+91 22", 8),
            "BR": ("+55 11", 8),
        }[country]
        return f"{prefix} {rng.randrange(10 ** (digits - 1) * 2, 10**digits)}"

    def pre_capture_visits(self, person: Person, when: datetime, campaign: str | None) -> None:
        rng = self.rng
        sessions = rng.choice((1, 1, 2, 3))
        for s in range(sessions):
            start = when - timedelta(days=rng.uniform(0, 10) if s < sessions - 1 else 0, minutes=rng.uniform(3, 20))
            self.visit(
                person.visitor_id or "",
                start,
                person.source,
                campaign,
                rng.randint(1, 5),
                last_page=f"/{person.context}" if s == sessions - 1 else None,
                propensity=person.propensity,
            )

    def visit(
        self,
        visitor_id: str,
        start: datetime,
        source: str,
        campaign: str | None,
        pages: int,
        *,
        last_page: str | None = None,
        propensity: float = 0.2,
    ) -> None:
        rng = self.rng
        profile = next((p for p in self.sources if p.id == source), None)
        utm = {}
        referrer = None
        if profile is not None and profile.utm_medium in ("cpc", "paid_social", "email"):
            utm = {"utm_source": source, "utm_medium": profile.utm_medium}
            if campaign:
                utm["utm_campaign"] = campaign
        elif source == "organic_search":
            referrer = "https://www.google.com/"
        elif source == "social":
            referrer = "https://www.linkedin.com/"
        paths = ["/", "/product", "/blog/data-quality", "/blog/forecasting", "/customers", "/integrations", "/about"]
        views = []
        at = start
        for i in range(pages):
            if last_page and i == pages - 1:
                path = last_page
            elif rng.random() < 0.1 + 0.4 * propensity:
                path = "/pricing"
            else:
                path = rng.choice(paths)
            views.append(
                PageView(
                    visitor_id=visitor_id,
                    url=f"https://northwind.example{path}",
                    occurred_at=at,
                    referrer=referrer if i == 0 else "https://northwind.example/",
                    utm=utm if i == 0 else {},
                )
            )
            at += timedelta(seconds=rng.uniform(20, 240))
        for view in views:
            self.at(view.occurred_at, "visit", view)

    def journey(self, person: Person, result: LeadResult, when: datetime) -> None:
        """Plan what happens to a lead after capture, from its propensity and its owner."""
        rng = self.rng
        p = person.propensity
        lead_id = result.lead_id
        owner = result.owner_id
        actor = f"owner:{owner}" if owner else "owner:unassigned"

        def act(at: datetime, type_: str, data: dict[str, Any] | None = None, by: str = actor) -> None:
            self.at(at, "activity", Activity(type=type_, lead_id=lead_id, occurred_at=at, actor=by, data=data or {}))

        if person.context == "trial":
            act(when + timedelta(minutes=1), "signup", {"plan": "trial"}, "product")
            act(when + timedelta(minutes=2), "trial_started", {"days": 14}, "product")
            for _ in range(int(rng.expovariate(1 / (1 + 12 * p)))):
                act(
                    when + timedelta(hours=rng.uniform(1, 14 * 24)),
                    "product_usage",
                    {"feature": rng.choice(["dashboards", "connectors", "alerts", "sharing"])},
                    "product",
                )

        # Marketing emails, while consented, until an unsubscribe or a bounce.
        if person.consent_email:
            at = when
            for n in range(rng.randint(*biz.EMAILS_PER_LEAD)):
                at += timedelta(days=rng.uniform(6, 20))
                campaign = {"campaign": f"nurture_{n + 1}"}
                act(at, "email_sent", campaign, "marketing")
                if rng.random() < biz.BOUNCE_RATE:
                    act(at + timedelta(minutes=1), "email_bounced", campaign, "marketing")
                    break
                act(at + timedelta(minutes=1), "email_delivered", campaign, "marketing")
                if rng.random() < biz.OPEN_RATE[0] + (biz.OPEN_RATE[1] - biz.OPEN_RATE[0]) * p:
                    opened = at + timedelta(hours=rng.uniform(0.2, 48))
                    act(opened, "email_opened", campaign, "recipient")
                    if rng.random() < (biz.CLICK_RATE[0] + (biz.CLICK_RATE[1] - biz.CLICK_RATE[0]) * p) / 0.3:
                        act(
                            opened + timedelta(minutes=rng.uniform(0, 5)),
                            "email_clicked",
                            {**campaign, "url": "https://northwind.example/pricing"},
                            "recipient",
                        )
                if rng.random() < biz.UNSUBSCRIBE_RATE * (2 - p):
                    act(at + timedelta(hours=rng.uniform(1, 72)), "email_unsubscribed", campaign, "recipient")
                    break

        # Later website visits by known visitors (identified: these score).
        if person.visitor_id and rng.random() < 0.3 + 0.5 * p:
            for _ in range(rng.randint(1, 3)):
                self.visit(
                    person.visitor_id,
                    when + timedelta(days=rng.uniform(1, 40)),
                    "direct",
                    None,
                    rng.randint(1, 4),
                    propensity=p,
                )

        # Returning person: submits another form later.
        if rng.random() < biz.RESUBMIT_RATE:
            again = when + timedelta(days=rng.uniform(3, 90))
            context = rng.choice(["demo", "contact", "quote", "newsletter"])
            again_payload = {
                "email": person.email.upper() if rng.random() < 0.3 else person.email,
                "capture_context": context,
                "source": person.source,
            }
            self.fill_form(again_payload, {**person.names, "company": person.company.name})
            self.at(again, "capture", (None, again_payload))

        # First touch by the owner, in working hours; some leads slip through.
        if owner is None or rng.random() < 0.06 + 0.1 * (1 - p):
            return
        urgency = 0.4 if result.score >= 70 else (1.0 if result.score >= 40 else 3.0)
        delay = timedelta(minutes=self.rep_speed.get(owner, 40) * urgency * rng.lognormvariate(0, 0.9))
        contacted = self.within_capacity(owner, self.working_time(when, delay))
        act(contacted, "call" if rng.random() < 0.6 else "email_sent", {"direction": "outbound"})

        # The rep qualifies: poor fits are disqualified.
        if p < 0.12 and rng.random() < biz.DISQUALIFY_LOW_FIT:
            reason = rng.choice(["student or job seeker", "no budget", "wrong company profile", "competitor research"])
            self.at(
                contacted + timedelta(hours=rng.uniform(0.5, 48)), "stage", (lead_id, "disqualified", reason, actor)
            )
            return
        if rng.random() < 0.15 + 0.5 * p:
            act(contacted + timedelta(days=rng.uniform(0.2, 4)), "email_replied", {}, "recipient")
        if rng.random() > 0.08 + 0.75 * p:
            return
        meeting = self.working_time(contacted, timedelta(days=rng.uniform(1, 8)))
        act(meeting - timedelta(days=1), "meeting_scheduled", {})
        act(meeting, "meeting_held", {"direction": "outbound"})
        if rng.random() > 0.3 + 0.6 * p:
            return
        sql_at = meeting + timedelta(hours=rng.uniform(1, 48))
        self.at(sql_at, "stage", (lead_id, "sql", "accepted by sales after discovery meeting", actor))
        if rng.random() > 0.5 + 0.45 * p:
            return
        created = sql_at + timedelta(days=rng.uniform(1, 12))
        size = next(v for limit, v in biz.DEAL_SIZE_BY_EMPLOYEES if person.company.employees <= limit)
        amount = Decimal(int(size * rng.lognormvariate(0, 0.35))).quantize(Decimal("1"))
        cycle = timedelta(days=rng.uniform(*biz.SALES_CYCLE_DAYS) * (1 + person.company.employees / 20000))
        won = rng.random() < 0.12 + 0.7 * p
        self.at(created, "opportunity", (lead_id, owner, amount, created + cycle, won, person))

    # -- running -------------------------------------------------------------------------------

    def plan_arrivals(self) -> None:
        month = self.start
        index = 0
        while month < self.end:
            factor = biz.SEASONALITY[month.month - 1] * (1 + biz.GROWTH_PER_MONTH) ** index
            for source in self.sources:
                expected = source.leads_per_month * factor * source.seasonal_peaks.get(month.month, 1.0)
                count = max(0, round(self.rng.gauss(expected, math.sqrt(expected))))
                for _ in range(count):
                    self.new_person(source, self.arrival_time(month))
                self.plan_spend(source, month, count)
                if source.web:
                    for _ in range(int(count * biz.ANONYMOUS_VISITORS_PER_LEAD)):
                        visitor = f"a{self.seed}-{next(self.visitor_ids)}"
                        self.visit(
                            visitor, self.arrival_time(month), source.id, None, self.rng.randint(1, 3), propensity=0.05
                        )
            month = next_month(month)
            index += 1

    def plan_spend(self, source: biz.SourceProfile, month: date, count: int) -> None:
        rng = self.rng
        until = min(next_month(month), self.end)
        if until <= month:
            return
        share = (until - month).days / (next_month(month) - month).days
        if source.cost_per_lead:
            total = source.cost_per_lead * count * Decimal(str(round(rng.uniform(0.9, 1.1), 3)))
            campaigns = source.campaigns or (None,)
            for c in campaigns:
                self.at(
                    datetime.combine(month, datetime.min.time(), UTC),
                    "spend",
                    (source.id, c, month, until, total / len(campaigns), "marketing"),
                )
        if source.fixed_monthly_cost:
            kind = "sales" if source.id == "outbound" else "marketing"
            amount = source.fixed_monthly_cost * Decimal(str(round(share, 4)))
            self.at(
                datetime.combine(month, datetime.min.time(), UTC),
                "spend",
                (source.id, None, month, until, amount, kind),
            )

    def run(self, progress: Callable[[int, int], None] | None = None) -> Summary:
        began = time.perf_counter()
        self.plan_arrivals()
        total_days = (self.end - self.start).days
        while self.queue:
            first = self.queue[0].at
            day_end = datetime.combine(first.date(), datetime.min.time(), UTC) + timedelta(days=1)
            with self.ws.transaction() as conn:
                while self.queue and self.queue[0].at < day_end:
                    self.step(conn, min(self.queue[0].at + WINDOW, day_end))
                # the worker's SLA pass, at the end of the day: what nobody answered escalates
                self.clock.set(max(day_end, self.clock.now()))
                while routing_service.tick(self.ws, conn):
                    pass
            if progress:
                progress(max(0, min((day_end.date() - self.start).days, total_days)), total_days)
        # bring decaying engagement scores up to the end of the simulation, as the worker would
        self.clock.set(max(self.end_at, self.clock.now()))
        run_task(self.ws, TASKS["scoring.decay"])
        self.summary.seconds = round(time.perf_counter() - began, 2)
        return self.summary

    def step(self, conn: Connection, window_end: datetime) -> None:
        """Apply every action due before ``window_end``, one batch per kind.

        Kinds run in causal order (spend, visits, captures, activities, stage changes, deals), so
        a visit just before a form submission is known when the lead is captured. Follow-ups an
        action schedules inside the window run in the next window.
        """
        due: dict[str, list[Action]] = {}
        while self.queue and self.queue[0].at < window_end:
            action = heapq.heappop(self.queue)
            due.setdefault(action.kind, []).append(action)
        for kind in KIND_ORDER:
            batch = due.get(kind)
            if batch:
                self.clock.set(max(batch[-1].at, self.clock.now()))
                getattr(self, f"do_{kind}")(conn, [a.payload for a in batch], [a.at for a in batch])

    def do_visit(self, conn: Connection, views: list[PageView], _times: list[datetime]) -> None:
        track_page_views(self.ws, conn, views)
        self.summary.page_views += len(views)

    def do_capture(
        self, conn: Connection, items: list[tuple[Person | None, dict[str, Any]]], times: list[datetime]
    ) -> None:
        region = self.ws.config.workspace.default_region
        captures: list[Capture] = []
        for (_person, payload), at in zip(items, times, strict=True):
            captures.append(
                normalise(
                    LeadIn.model_validate({**payload, "occurred_at": at}),
                    default_region=region,
                    now=at,
                    rules=self.ws.rules.capture,
                )
            )
        results = process_many(self.ws, conn, captures, actor="web")
        self.summary.submissions += len(results)
        for (person, _payload), result, at in zip(items, results, times, strict=True):
            if person is None or not result.created:
                continue
            self.summary.leads += 1
            person.lead_id = result.lead_id
            person.owner = result.owner_id
            self.people[result.lead_id] = person
            if person.referred_by is not None:
                self.at(
                    at,
                    "activity",
                    Activity(
                        type="referral",
                        lead_id=person.referred_by,
                        occurred_at=at,
                        actor="recipient",
                        data={"referred_lead_id": result.lead_id},
                    ),
                )
            self.journey(person, result, at)

    def do_activity(self, conn: Connection, activities: list[Activity], _times: list[datetime]) -> None:
        record_activities(self.ws, conn, activities)
        self.summary.activities += len(activities)

    def do_stage(self, conn: Connection, items: list[tuple[int, str, str, str]], times: list[datetime]) -> None:
        for (lead_id, to, reason, actor), at in zip(items, times, strict=True):
            try:
                change_stage(self.ws, conn, lead_id, to, reason=reason, actor=actor, occurred_at=at)
                self.summary.stage_changes += 1
            except LeadflowError:
                pass  # the lead moved on by itself (e.g. it is already further along)

    def do_opportunity(self, conn: Connection, items: list[tuple[Any, ...]], times: list[datetime]) -> None:
        for (lead_id, owner, amount, close_at, won, person), at in zip(items, times, strict=True):
            opp = create_opportunity(
                self.ws,
                conn,
                lead_id=lead_id,
                name=f"{person.company.name} — Northwind Analytics",
                amount=amount,
                product="Northwind Analytics",
                pipeline_stage="discovery",
                owner_id=owner,
                created_at=at,
                actor=f"owner:{owner}",
            )
            self.summary.opportunities += 1
            self.at(close_at, "close", (opp, won, amount, person))

    def do_close(self, conn: Connection, items: list[tuple[Any, ...]], times: list[datetime]) -> None:
        rng = self.rng
        for (opp, won, amount, person), at in zip(items, times, strict=True):
            reason = None if won else rng.choice(["chose a competitor", "no decision", "budget cut", "timing"])
            final = (
                amount if not won else (amount * Decimal(str(round(rng.uniform(0.85, 1.05), 2)))).quantize(Decimal("1"))
            )
            close_opportunity(
                self.ws, conn, opp, won=won, amount=final, reason=reason, closed_at=at, actor=f"owner:{person.owner}"
            )
            if won:
                self.summary.won += 1
                if person.context == "trial":
                    self.at(
                        at,
                        "activity",
                        Activity(
                            type="subscription_started",
                            lead_id=person.lead_id or 0,
                            occurred_at=at,
                            actor="product",
                            data={"plan": "business"},
                        ),
                    )
                if rng.random() < biz.REFERRAL_RATE:
                    referral = next(s for s in self.sources if s.id == "referral")
                    self.new_person_later(
                        referral, at + timedelta(days=rng.uniform(10, 60)), referred_by=person.lead_id
                    )
            else:
                self.summary.lost += 1

    def new_person_later(self, source: biz.SourceProfile, when: datetime, *, referred_by: int | None) -> None:
        if when < self.end_at:
            self.new_person(source, when, referred_by=referred_by)

    def do_spend(self, conn: Connection, items: list[tuple[Any, ...]], _times: list[datetime]) -> None:
        currency = self.ws.config.workspace.currency
        for source, campaign, start, end, amount, kind in items:
            amount = Decimal(amount).quantize(Decimal("0.01"))
            record_spend(
                conn,
                source=source,
                campaign=campaign,
                amount=amount,
                period_start=start,
                period_end=end,
                currency=currency,
                kind=kind,
                origin="simulation",
            )
            self.summary.spend += amount


def simulate(
    ws: Workspace,
    *,
    months: int = 12,
    seed: int = 0,
    end: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Simulate ``months`` of the business ending at ``end`` (default today) through the pipeline."""
    return Simulation(ws, months=months, seed=seed, end=end).run(progress)


def sample_leads(ws: Workspace, count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` realistic lead submissions from the simulated business's sources (no history)."""
    sim = Simulation(ws, months=1, seed=seed)
    weights = [s.leads_per_month for s in sim.sources]
    out = []
    for _ in range(count):
        source = sim.rng.choices(sim.sources, weights=weights)[0]
        out.append(sim.person_and_payload(source)[1])
    return out
