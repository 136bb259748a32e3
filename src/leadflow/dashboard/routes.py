"""Dashboard pages (server-rendered): parse, authorise, call the domain services, render."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import threading
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from leadflow import events as ev
from leadflow.capture.spam import RateLimiter
from leadflow.config.workspace import RateLimit
from leadflow.dashboard import queries, sessions
from leadflow.dashboard.users import Locked, User, authenticate, end_sessions, get_user, record_sign_in
from leadflow.db.app_secrets import cached_app_secret
from leadflow.errors import LeadflowError, NotFound
from leadflow.web.templates import templates
from leadflow.workspace import Workspace

log = logging.getLogger(__name__)
router = APIRouter(prefix="/app", include_in_schema=False)
STATIC = Path(__file__).parent / "static"
NAV = [
    ("inbox", "Inbox"),
    ("review", "Review"),
    ("teams", "Teams"),
    ("metrics", "Metrics"),
    ("models", "Models"),
]


class SignInRequired(Exception):
    pass


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]


# Sign-in attempts per address, in this process: a burst of 20, then 10 a minute (per account,
# repeated failures lock the account for a while: see users.authenticate).
SIGN_IN_RATE = RateLimit(burst=20, per_minute=10)


def _sign_in_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "sign_in_limiter", None)
    if limiter is None:
        limiter = request.app.state.sign_in_limiter = RateLimiter(SIGN_IN_RATE)
    return limiter


def _key(ws: Workspace) -> bytes:
    cached = cached_app_secret(ws, sessions.SESSION_KEY_NAME)
    if cached is not None:
        return cached
    with ws.transaction() as conn:
        return sessions.session_key(ws, conn)


def current_user(request: Request) -> User | None:
    ws = _ws(request)
    value = request.cookies.get(sessions.COOKIE)
    user_id = sessions.user_id_of(value, ws.clock.now())
    if user_id is None or value is None:
        return None
    try:
        with ws.reader() as conn:
            user = get_user(conn, user_id)
    except NotFound:
        return None
    return user if sessions.verify(_key(ws), value, user) else None


def _page(request: Request, name: str, user: User | None, status: int = 200, **context: Any) -> Response:
    ws = _ws(request)
    session = request.cookies.get(sessions.COOKIE, "")
    response = templates.TemplateResponse(
        request,
        f"dashboard/{name}",
        {
            "user": user,
            "nav": [(page, label) for page, label in NAV if user is not None and user.can(page)],
            "csrf": sessions.csrf_token(_key(ws), session) if user else "",
            "workspace": ws.config.workspace.name,
            "now": ws.clock.now(),
            "sequences": [s.id for s in ws.config.nurture.sequences],
            "done": request.query_params.get("done"),
            "error": request.query_params.get("error"),
            **context,
        },
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _signed_in(request: Request, page: str | None = None) -> User:
    user = current_user(request)
    if user is None:
        raise SignInRequired()
    if page is not None and not user.can(page):
        raise PermissionError(page)
    return user


def _back(path: str, *, done: str | None = None, error: str | None = None) -> RedirectResponse:
    if done:
        path += f"?done={quote(done)}"
    elif error:
        path += f"?error={quote(error)}"
    return RedirectResponse(path, status_code=303)


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/app/") and not value.startswith("//") else "/app/inbox"


def _forbidden(request: Request, user: User, what: str) -> Response:
    return _page(request, "error.html", user, 403, title="Not yours to see", message=what)


async def _check_csrf(request: Request, user: User) -> bool:
    form = await request.form()
    token = form.get("csrf")
    return sessions.check_csrf(_key(_ws(request)), request.cookies.get(sessions.COOKIE, ""), str(token or ""))


def install(app: Any) -> None:
    """Register the dashboard and its handlers on the application."""
    app.include_router(router)
    # Compile the pages now (about 0.1 s in all), not in the first request of each.
    for name in templates.env.list_templates(filter_func=lambda n: n.startswith("dashboard/")):
        templates.env.get_template(name)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        return RedirectResponse(f"/app/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(PermissionError)
    async def _no_page(request: Request, exc: PermissionError) -> Response:
        user = current_user(request)
        return _page(
            request,
            "error.html",
            user,
            403,
            title="Not for your role",
            message=f"The {exc} page is not open to your role.",
        )


# -- sign in and out -----------------------------------------------------------------------------


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse("/app/inbox", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    ws = _ws(request)
    token = sessions.login_token(_key(ws), ws.clock.now())
    return _page(request, "login.html", None, token=token, next=_safe_next(next), email="")


@router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/app/inbox",
) -> Response:
    ws = _ws(request)
    key, now = _key(ws), ws.clock.now()
    if not sessions.check_login_token(key, csrf, now):
        return _page(
            request, "error.html", None, 403, title="Form expired", message="Reload the sign-in page and try again."
        )
    client = request.client.host if request.client else "unknown"
    wait = _sign_in_limiter(request).allow(client)
    locked = None
    if not wait:
        try:
            with ws.transaction() as conn:
                user = authenticate(conn, email, password, now)
                if user is not None:
                    record_sign_in(conn, user, now)
        except Locked as exc:
            locked = exc.until
    if wait or locked is not None:
        seconds = math.ceil(wait or (locked - now).total_seconds())  # type: ignore[operator]
        response = _page(
            request,
            "login.html",
            None,
            429,
            token=sessions.login_token(key, now),
            next=_safe_next(next),
            email=email,
            failed=f"Too many failed sign-ins; try again in {seconds} s.",
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    if user is None:
        token = sessions.login_token(key, now)
        return _page(
            request,
            "login.html",
            None,
            401,
            token=token,
            next=_safe_next(next),
            email=email,
            failed="That email and password do not match an account.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        sessions.issue(key, user, now),
        max_age=sessions.MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = _signed_in(request)
    if not await _check_csrf(request, user):
        return _page(request, "error.html", user, 403, title="Form expired", message="Reload the page and try again.")
    ws = _ws(request)
    with ws.transaction() as conn:  # the cookie stops working anywhere, not just in this browser
        end_sessions(conn, user)
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# -- inbox and lead ------------------------------------------------------------------------------


@router.get("/inbox")
def inbox(request: Request) -> Response:
    user = _signed_in(request, "inbox")
    ws = _ws(request)
    with ws.reader() as conn:
        rows = queries.inbox(conn, user)
    scope = {"rep": "Your open leads", "manager": f"Open leads of team {user.team_id}"}.get(user.role, "All open leads")
    return _page(
        request,
        "inbox.html",
        user,
        leads=rows,
        scope=scope,
        reasons=ws.config.handoff.reasons,
        stages=[*ws.rules.stages.order, *ws.config.stages.side],
    )


@router.get("/leads/{lead_id}")
def lead_page(request: Request, lead_id: int) -> Response:
    from leadflow.handoff.service import status as handoff_status
    from leadflow.leads.schemas import lead_out
    from leadflow.leads.service import get_lead
    from leadflow.nurture.service import enrolments_of

    user = _signed_in(request, "inbox")
    ws = _ws(request)
    with ws.reader() as conn:
        try:
            if not queries.can_read(conn, user, lead_id):
                return _forbidden(request, user, f"Lead {lead_id} belongs to someone else's pipeline.")
        except NotFound:
            return _page(request, "error.html", user, 404, title="No such lead", message=f"There is no lead {lead_id}.")
        row = get_lead(conn, lead_id)
        out = lead_out(row, ws.rules.scoring)
        timeline = ev.for_lead(conn, lead_id)
        handoff = handoff_status(conn, lead_id)
        enrolments = enrolments_of(conn, lead_id)
        prediction = _prediction(ws, conn, lead_id)
        merges = queries.merge_history(conn, lead_id)
    assignments = [e for e in timeline if e["type"] in (ev.LEAD_ASSIGNED, ev.SLA_ESCALATED)]
    return _page(
        request,
        "lead.html",
        user,
        lead=row,
        out=out,
        timeline=list(reversed(timeline)),
        handoff=handoff,
        enrolments=enrolments,
        merges=merges,
        prediction=prediction,
        assignments=assignments,
        reasons=ws.config.handoff.reasons,
        stages=[*ws.rules.stages.order, *ws.config.stages.side],
    )


def _prediction(ws: Workspace, conn: Any, lead_id: int) -> dict[str, Any] | None:
    from leadflow.model.registry import active_id
    from leadflow.model.scoring import predict_lead

    if active_id(conn) is None:
        return None
    try:
        found = predict_lead(ws, conn, lead_id)
    except LeadflowError:
        return None
    found["top"] = sorted(found.get("contributions") or [], key=lambda c: -abs(c["contribution"]))[:5]
    return found


async def _lead_action(request: Request, lead_id: int) -> tuple[User, Response | None]:
    user = _signed_in(request, "inbox")
    if not await _check_csrf(request, user):
        return user, _page(
            request, "error.html", user, 403, title="Form expired", message="Reload the page and try again."
        )
    with _ws(request).reader() as conn:
        try:
            if not queries.can_read(conn, user, lead_id):
                return user, _forbidden(request, user, f"Lead {lead_id} belongs to someone else's pipeline.")
        except NotFound:
            return user, _page(
                request, "error.html", user, 404, title="No such lead", message=f"There is no lead {lead_id}."
            )
    return user, None


@router.post("/leads/{lead_id}/log")
async def log_touch(request: Request, lead_id: int) -> Response:
    from leadflow.pipeline import Activity, record_activities

    user, refused = await _lead_action(request, lead_id)
    if refused:
        return refused
    form = await request.form()
    kind = {"call": "call", "email": "email_sent"}.get(str(form.get("kind")))
    back = _safe_next(str(form.get("next") or f"/app/leads/{lead_id}"))
    if kind is None:
        return _back(back, error="Choose call or email.")
    ws = _ws(request)
    with ws.transaction() as conn:
        result = record_activities(
            ws, conn, [Activity(kind, lead_id, ws.clock.now(), actor=user.actor, data={"direction": "outbound"})]
        )[0]
    said = "Call" if kind == "call" else "Email"
    return _back(back, done=f"{said} logged for lead {lead_id}" + ("; SLA met." if result.first_contact else "."))


@router.post("/leads/{lead_id}/handoff")
async def decide_handoff(request: Request, lead_id: int) -> Response:
    from leadflow.handoff.service import accept, reject

    user, refused = await _lead_action(request, lead_id)
    if refused:
        return refused
    form = await request.form()
    back = _safe_next(str(form.get("next") or f"/app/leads/{lead_id}"))
    note = str(form.get("note") or "").strip()[:300] or None
    ws = _ws(request)
    try:
        with ws.transaction() as conn:
            if form.get("decision") == "accept":
                accept(ws, conn, lead_id, actor=user.actor, note=note)
                said = f"Lead {lead_id} accepted."
            else:
                reject(ws, conn, lead_id, reason=str(form.get("reason") or ""), actor=user.actor, note=note)
                said = f"Lead {lead_id} rejected ({form.get('reason')})."
    except LeadflowError as exc:
        return _back(back, error=str(exc))
    return _back(back, done=said)


@router.post("/leads/{lead_id}/stage")
async def move_stage(request: Request, lead_id: int) -> Response:
    from leadflow.qualify.service import change_stage

    user, refused = await _lead_action(request, lead_id)
    if refused:
        return refused
    form = await request.form()
    back = _safe_next(str(form.get("next") or f"/app/leads/{lead_id}"))
    ws = _ws(request)
    to = str(form.get("to") or "")
    reason = str(form.get("reason") or "").strip()[:300] or None
    try:
        with ws.transaction() as conn:
            change_stage(ws, conn, lead_id, to, reason=reason, actor=user.actor)
    except LeadflowError as exc:
        return _back(back, error=str(exc))
    return _back(back, done=f"Lead {lead_id} moved to {to}.")


@router.post("/leads/{lead_id}/nurture")
async def enrol_in_nurture(request: Request, lead_id: int) -> Response:
    from leadflow.nurture.service import enrol_lead

    user, refused = await _lead_action(request, lead_id)
    if refused:
        return refused
    form = await request.form()
    back = _safe_next(str(form.get("next") or f"/app/leads/{lead_id}"))
    ws = _ws(request)
    sequence = str(form.get("sequence") or "")
    try:
        with ws.transaction() as conn:
            enrol_lead(ws, conn, lead_id, sequence, actor=user.actor)
    except LeadflowError as exc:
        return _back(back, error=str(exc))
    return _back(back, done=f"Lead {lead_id} enrolled in {sequence.replace('_', ' ')}.")


# -- review queue --------------------------------------------------------------------------------


@router.get("/review")
def review(request: Request) -> Response:
    user = _signed_in(request, "review")
    with _ws(request).reader() as conn:
        items = queries.review_queue(conn, user)
        pairs = queries.duplicate_pairs(conn, user)
    return _page(request, "review.html", user, items=items, pairs=pairs)


@router.post("/duplicates/{pair_id}")
async def duplicate_decide(request: Request, pair_id: int) -> Response:
    from leadflow.identity.review import decide_pair

    user = _signed_in(request, "review")
    if not await _check_csrf(request, user):
        return _page(request, "error.html", user, 403, title="Form expired", message="Reload the page and try again.")
    form = await request.form()
    ws = _ws(request)
    with ws.reader() as conn:
        both = queries.pair_leads(conn, pair_id)
        if both is not None and not all(queries.can_read(conn, user, i) for i in both):
            return _forbidden(request, user, f"Pair {pair_id} involves a lead outside your team.")
    decision = str(form.get("decision") or "")
    try:
        with ws.transaction() as conn:
            result = decide_pair(ws, conn, pair_id, decision, reason=str(form.get("reason") or ""), actor=user.actor)
    except LeadflowError as exc:
        return _back("/app/review", error=str(exc))
    said = f"merged into lead {result['survivor_id']}" if result["status"] == "merged" else "kept apart"
    return _back("/app/review", done=f"Pair {pair_id} {said}.")


@router.post("/leads/{lead_id}/unmerge")
async def unmerge(request: Request, lead_id: int) -> Response:
    """Undo the merge that folded lead ``lead_id`` into another (the survivor must be readable)."""
    from leadflow.identity.merge import unmerge_leads

    user = _signed_in(request, "review")
    if not await _check_csrf(request, user):
        return _page(request, "error.html", user, 403, title="Form expired", message="Reload the page and try again.")
    form = await request.form()
    back = _safe_next(str(form.get("next") or "/app/inbox"))
    ws = _ws(request)
    with ws.reader() as conn:
        history = [
            m for m in queries.merge_history(conn, lead_id) if m["merged_id"] == lead_id and not m["unmerged_at"]
        ]
        if not history or not queries.can_read(conn, user, history[0]["survivor_id"]):
            return _forbidden(request, user, f"Lead {lead_id} is not a merged lead you can see.")
    try:
        with ws.transaction() as conn:
            unmerge_leads(ws, conn, lead_id, actor=user.actor)
    except LeadflowError as exc:
        return _back(back, error=str(exc))
    return _back(back, done=f"Lead {lead_id} is separate again.")


@router.post("/review/{item_id}")
async def review_decide(request: Request, item_id: int) -> Response:
    from leadflow.qualify.review import decide

    user = _signed_in(request, "review")
    if not await _check_csrf(request, user):
        return _page(request, "error.html", user, 403, title="Form expired", message="Reload the page and try again.")
    form = await request.form()
    ws = _ws(request)
    with ws.reader() as conn:
        lead_id = queries.review_lead(conn, item_id)
        if lead_id is not None and not queries.can_read(conn, user, lead_id):
            return _forbidden(request, user, f"Review item {item_id} is about a lead outside your team.")
    try:
        with ws.transaction() as conn:
            result = decide(
                ws,
                conn,
                item_id,
                str(form.get("decision") or ""),
                reason=str(form.get("reason") or ""),
                actor=user.actor,
            )
    except LeadflowError as exc:
        return _back("/app/review", error=str(exc))
    return _back(
        "/app/review", done=f"Review {item_id} {result['status']}; lead {result['lead_id']} is {result['stage']}."
    )


# -- teams, metrics, models ----------------------------------------------------------------------


@router.get("/teams")
def teams(request: Request) -> Response:
    user = _signed_in(request, "teams")
    ws = _ws(request)
    with ws.reader() as conn:
        board = queries.team_board(ws, conn, user)
    return _page(request, "teams.html", user, board=board)


def _cached(ws: Workspace, key: Any, compute: Any) -> Any:
    """Figures change only when an event is written (``key`` holds the newest event's id and the
    config version): keep them until then."""
    cache: dict[Any, Any] = ws.caches.setdefault("dashboard.metrics", {})
    if key not in cache:
        if len(cache) > 128:
            cache.clear()
        cache[key] = compute()
    return cache[key]


@dataclass(frozen=True)
class _MetricsView:
    filters: queries.MetricsFilter
    model: str
    months: int
    choices: dict[str, Any]
    version: tuple[int, str]
    viewer: tuple[Any, ...]

    @property
    def query(self) -> str:
        """The view's query string (what a link or a fragment of it carries)."""
        f = self.filters
        pairs = [("months", self.months), ("source", f.source), ("campaign", f.campaign), ("team", f.team)]
        return urlencode([(k, v) for k, v in [*pairs, ("model", self.model)] if v])


MONTHS = Annotated[int, Query(ge=1, le=36)]
NAME = Annotated[str | None, Query(max_length=64)]


def _metrics_view(
    request: Request,
    months: MONTHS = 12,
    source: NAME = None,
    campaign: NAME = None,
    team: NAME = None,
    model: NAME = None,
) -> tuple[User, _MetricsView]:
    """The metrics routes' dependency: parse and authorise the period, filters and attribution
    model of the query string; a value the viewer has no leads for is dropped."""
    from leadflow.metrics.attribution import MODELS

    user = _signed_in(request, "metrics")
    ws = _ws(request)
    today = ws.clock.now().date()
    first = date(today.year, today.month, 1)
    total = first.year * 12 + first.month - 1 - (months - 1)
    start = date(total // 12, total % 12 + 1, 1)
    end = date.fromordinal(today.toordinal() + 1)
    viewer = (user.role, user.team_id, user.owner_id)
    with ws.reader() as conn:
        version = (queries.last_event_id(conn), ws.version)
        choices = _cached(
            ws,
            ("choices", viewer, *version),
            lambda: dict(
                zip(("sources", "campaigns"), queries.sources_and_campaigns(conn, user), strict=True),
                teams=queries.teams(ws, conn, user),
            ),
        )
    f = queries.MetricsFilter(
        start,
        end,
        source=source if source in choices["sources"] else None,
        campaign=campaign if campaign in choices["campaigns"] else None,
        team=team if team in dict(choices["teams"]) else None,
    )
    return user, _MetricsView(f, model if model in MODELS else "linear", months, choices, version, viewer)


MetricsView = Annotated[tuple[User, _MetricsView], Depends(_metrics_view)]


@router.get("/metrics")
def metrics(
    request: Request,
    asked: MetricsView,
) -> Response:
    """The metrics page; asked by HTMX (the filter form), only the figures and charts below it.
    CPL, CAC and ROAS follow in a fragment of their own (``/app/metrics/economics``)."""
    from leadflow.metrics.attribution import MODELS

    user, view = asked
    ws = _ws(request)
    f = view.filters
    with ws.reader() as conn:
        board = _cached(ws, ("board", view.viewer, f, *view.version), lambda: queries.metrics_board(ws, conn, user, f))
    partial = request.headers.get("HX-Request") == "true" and not request.headers.get("HX-History-Restore-Request")
    return _page(
        request,
        "_metrics_body.html" if partial else "metrics.html",
        user,
        board=board,
        view=view,
        choices=view.choices,
        team_names=dict(view.choices["teams"]),
        filters=f,
        model=view.model,
        models=MODELS,
        months=view.months,
        charts_json=json.dumps(board, default=str).replace("</", "<\\/"),
        plotly=_plotly_path() is not None,
    )


@router.get("/metrics/economics")
def metrics_economics(
    request: Request,
    asked: MetricsView,
) -> Response:
    """CPL, CAC and ROAS by campaign and by source for the metrics page's view (a fragment)."""
    user, view = asked
    ws = _ws(request)
    f = view.filters
    with ws.reader() as conn:
        economics = _cached(
            ws,
            ("economics", f.start, f.end, view.model, *view.version),
            lambda: {
                by: queries.unit_economics(ws, conn, f.start, f.end, view.model, by) for by in ("source", "campaign")
            },
        )
    # Spend has no owner or team: the source and campaign filters pick rows of the workspace's figures.
    economics = {
        by: [r for r in rows if not wanted or r["group"] == wanted]
        for by, rows, wanted in (
            ("source", economics["source"], f.source),
            ("campaign", economics["campaign"], f.campaign),
        )
    }
    return _page(
        request,
        "_metrics_economics.html",
        user,
        economics=economics,
        filters=f,
        model=view.model,
        economics_json=json.dumps(economics, default=str).replace("</", "<\\/"),
    )


class _Advice:
    """Threshold advice's inputs (every past lead's score and outcome: seconds to build on a year
    of leads), kept per active model and config version. Built when the models page is first
    shown (in the background, so the capacity asked next is answered at once) or, failing that,
    by the first request that needs them; once events have been written since, they are rebuilt
    in the background while the last ones keep answering (the page says as of when)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: Any = None
        self.event = -1
        self.inputs: Any = None
        self.refreshing = False

    def get(self, ws: Workspace, key: Any, event: int) -> Any:
        if self.key == key and self.inputs is not None:
            if event != self.event:
                self.refresh(ws, key, event)
            return self.inputs
        with self.lock:
            if self.key != key or self.inputs is None:
                self._build(ws, key, event)
            return self.inputs

    def refresh(self, ws: Workspace, key: Any, event: int) -> None:
        if self.refreshing or (self.key == key and self.event == event):
            return
        self.refreshing = True
        threading.Thread(target=self._background, args=(ws, key, event), daemon=True).start()

    def _background(self, ws: Workspace, key: Any, event: int) -> None:
        try:
            with self.lock:
                if self.key != key or self.event != event:
                    self._build(ws, key, event)
        except LeadflowError as exc:  # the request that needs the inputs reports it to its user
            log.info("threshold advice inputs not rebuilt: %s", exc.message)
        finally:
            self.refreshing = False

    def _build(self, ws: Workspace, key: Any, event: int) -> None:
        from leadflow.model.thresholds import advice_inputs

        with ws.reader() as conn:
            inputs = advice_inputs(ws, conn)
        self.key, self.event, self.inputs = key, event, inputs


@router.get("/models")
def models(request: Request, capacity: Annotated[float | None, Query(gt=0, le=100000)] = None) -> Response:
    from leadflow.model.thresholds import advise_with

    user = _signed_in(request, "models")
    ws = _ws(request)
    advice, problem, as_of = None, None, None
    with ws.reader() as conn:
        summary = queries.model_summary(conn)
        event = queries.last_event_id(conn)
    cache: _Advice = ws.caches.setdefault("dashboard.advice", _Advice())
    key = ((summary or {}).get("active_id"), ws.version)
    if capacity is None:
        cache.refresh(ws, key, event)
    else:
        try:
            inputs = cache.get(ws, key, event)
            advice, as_of = advise_with(ws, inputs, capacity), inputs.as_of
        except LeadflowError as exc:
            problem = str(exc)
    evaluation = (summary or {}).get("version", {}).get("report", {}).get("evaluation") or {}
    return _page(
        request,
        "models.html",
        user,
        summary=summary,
        capacity=capacity,
        advice=advice,
        advice_as_of=as_of,
        problem=problem,
        evaluation_json=json.dumps(evaluation, default=str).replace("</", "<\\/"),
        plotly=_plotly_path() is not None,
    )


# -- static files --------------------------------------------------------------------------------


@cache
def _plotly_path() -> Path | None:
    """Plotly's bundled script, found without importing plotly (tens of milliseconds)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.exists() else None


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name == "plotly.min.js":
        path = _plotly_path()
    else:
        path = STATIC / name if name in {"dashboard.css", "dashboard.js", "metrics.js", "htmx.min.js"} else None
    if path is None:
        return Response("not found", status_code=404)
    media = "text/css" if name.endswith(".css") else "application/javascript"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})
