"""Public web forms: ``GET /forms/{context}`` serves a form for a capture context, ``POST /w2l``
takes any Web-to-Lead compatible form (no API key; rate-limited per IP, honeypot, minimum time to
submit, size cap) and either redirects to ``retURL`` (allowed hosts only) or thanks the person.
``GET /api/v1/forms/refusals`` shows what the guards turned away."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.api.errors import problem
from leadflow.capture import refusals
from leadflow.capture.spam import FORM_SECRET, RateLimiter, seconds_since, secret, timing_token
from leadflow.capture.web_to_lead import UTM_FIELDS, form_names, form_to_lead, return_target
from leadflow.errors import Conflict, InvalidInput, Problem
from leadflow.pipeline import process
from leadflow.web.templates import templates

router = APIRouter(tags=["web forms"])
log = logging.getLogger("leadflow.capture")

INPUT_KIND = {"email": "email", "phone": "tel", "website": "url", "employees": "number", "notes": "textarea"}
AUTOCOMPLETE = {
    "email": "email",
    "first_name": "given-name",
    "last_name": "family-name",
    "phone": "tel",
    "company": "organization",
    "title": "organization-title",
    "website": "url",
    "country": "country-name",
    "city": "address-level2",
}
FORM_NAME = {"notes": "description", "website": "URL"}  # the Web-to-Lead name for a lead field


def _label(name: str) -> str:
    return name.removeprefix("custom.").removeprefix("custom_").replace("_", " ").capitalize()


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "form_limiter", None)
    if limiter is None:
        limiter = request.app.state.form_limiter = RateLimiter(workspace(request).rules.capture.web_to_lead.rate_limit)
    return limiter


@router.get("/forms/{context}", response_class=HTMLResponse, summary="A ready-made form for a capture context")
def form_page(
    request: Request,
    context: Annotated[str, Path(pattern=r"^[a-z0-9_\-]{1,64}$")],
    ret_url: Annotated[str | None, Query(alias="retURL", max_length=500)] = None,
) -> HTMLResponse:
    ws = workspace(request)
    rules = ws.rules.capture
    form = rules.forms.get(context)
    if form is None:
        return HTMLResponse("<h1>No such form</h1>", status_code=404)
    ret_url, not_followed = return_target(ret_url, rules.web_to_lead.allowed_return_hosts)
    if not_followed:  # the form still works: it thanks the person on leadflow's own page
        log.warning("form %s served without its retURL: %s", context, not_followed)
    key = _form_key(request)
    fields = [
        {
            "name": FORM_NAME.get(name, name.replace("custom.", "custom_")),
            "label": _label(name),
            "required": name in form.required,
            "kind": INPUT_KIND.get(name, "text"),
            "autocomplete": AUTOCOMPLETE.get(name, "off"),
        }
        for name in form.fields
    ]
    carried = {k: v[:100] for k, v in request.query_params.items() if k in UTM_FIELDS}  # page URL -> form
    return templates.TemplateResponse(
        request,
        "form.html",
        {
            "workspace": ws.config.workspace.name,
            "context": context,
            "form": form,
            "fields": fields,
            "action": "/w2l",
            "token": timing_token(key, int(time.time() * 1000)),
            "honeypot": rules.web_to_lead.honeypot,
            "ret_url": ret_url,
            "hidden": carried,
        },
    )


@router.post(
    "/w2l",
    summary="Web-to-Lead: capture a lead from an HTML form",
    response_class=HTMLResponse,
    responses={
        303: {"description": "captured; on to retURL"},
        422: {"description": "the form is not valid"},
        429: {"description": "too many submissions"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "required": True,
        }
    },
)
async def web_to_lead(request: Request) -> Response:
    ws = workspace(request)
    settings = ws.rules.capture.web_to_lead
    client = request.client.host if request.client else "unknown"
    wants_html = "text/html" in request.headers.get("accept", "") or "application/json" not in request.headers.get(
        "accept", ""
    )
    limiter = _limiter(request)
    wait = limiter.allow(client)
    if wait:
        if n := limiter.refusals_to_record(client):
            await run_in_threadpool(_record_refusal, ws, "rate_limited", None, client, n)
        return _too_many(request, ws, int(wait) + 1, wants_html)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return problem(415, "Unsupported media type", "send the form as application/x-www-form-urlencoded")
    try:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    except Exception:  # a body the form parser cannot read
        return problem(400, "Bad request", "the form body could not be read")
    # a retURL leadflow may not follow costs the visitor nothing: the lead is kept, they are
    # thanked here, and the capture event says why they were not sent on
    target, not_followed = return_target(form.get("retURL"), settings.allowed_return_hosts)
    context = (form.get("lf_context") or form.get("capture_context") or "").strip() or None
    bot = await run_in_threadpool(_bot_reason, request, form, settings.honeypot, settings.min_seconds)
    if bot:
        known = context if context in ws.rules.capture.forms else None
        await run_in_threadpool(_record_refusal, ws, bot, known, client, 1)
        return _done(request, ws, target, settings.thank_you)
    consent_wording = ws.rules.capture.forms[context].consent if context in ws.rules.capture.forms else None
    try:
        payload = form_to_lead(
            form,
            honeypot=settings.honeypot,
            referrer=request.headers.get("referer"),
            consent_wording=consent_wording,
            action=request.query_params,
        )
        event_data = {"return_refused": not_followed} if not_followed else {}
        await run_in_threadpool(_capture, ws, request, client, payload, event_data)
    except InvalidInput as exc:
        return _refused(request, ws, InvalidInput(exc.message, form_names(form, exc.problems)), wants_html)
    except Conflict as exc:  # an erased person's email or phone (privacy.after_erasure)
        # a public page must not tell a stranger that someone with this address asked to be erased
        neutral = [Problem(p.field, "cannot be used on this form; please contact us directly") for p in exc.problems]
        return _refused(request, ws, Conflict("we cannot take this submission", form_names(form, neutral)), wants_html)
    if not_followed:
        log.warning("web-to-lead: lead kept, retURL not followed: %s", not_followed)
    return _done(request, ws, target, settings.thank_you)


@router.get("/api/v1/forms/refusals", summary="What the public form guards turned away (no personal data)")
def form_refusals(
    request: Request,
    key: Annotated[ApiKey, Depends(api_key("metrics:read"))],
    since: Annotated[datetime | None, Query(description="default: the start of the day 6 days ago")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> JSONResponse:
    ws = workspace(request)
    with ws.reader() as conn:
        report = refusals.report(conn, since=since or refusals.default_since(ws.clock.now()), limit=limit)
    return JSONResponse(jsonable_encoder(report))


def _record_refusal(ws: Any, reason: str, context: str | None, client: str, count: int) -> None:
    with ws.transaction() as conn:
        refusals.record(
            conn,
            reason=reason,
            context=context,
            client=client,
            at=ws.clock.now(),
            config_version=ws.rules.version,
            count=count,
        )


def _form_key(request: Request) -> bytes:
    """The secret that signs form timing tokens (from the database, shared by all processes)."""
    key: bytes | None = getattr(request.app.state, "form_key", None)
    if key is None:
        ws = workspace(request)
        with ws.transaction() as conn:
            key = request.app.state.form_key = secret(conn, FORM_SECRET, ws.clock.now())
    return key


def _bot_reason(request: Request, form: dict[str, str], honeypot: str, min_seconds: float) -> str | None:
    """Why this looks like a bot (a reason of ``capture.refusals``), or None."""
    if form.get(honeypot, "").strip():
        return "honeypot"
    token = form.get("_lf_ts")
    if not token:
        return None  # a form leadflow did not serve: not timed
    elapsed = seconds_since(_form_key(request), token, int(time.time() * 1000))
    if elapsed is None:
        return "bad_token"
    return "too_fast" if elapsed < min_seconds else None


def _capture(ws: Any, request: Request, client: str, payload: dict[str, Any], event_data: dict[str, Any]) -> None:
    def work(conn: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        result = process(ws, conn, payload, actor="web-form", event_data=event_data)
        return 201, {"lead_id": result.lead_id, "created": result.created}, {}

    idempotency.run(ws, request, f"form:{client}", payload, work)


def _done(request: Request, ws: Any, target: str | None, message: str) -> Response:
    if target:
        return RedirectResponse(target, status_code=303)
    return templates.TemplateResponse(
        request, "thanks.html", {"workspace": ws.config.workspace.name, "message": message}
    )


def _too_many(request: Request, ws: Any, retry_after: int, wants_html: bool) -> Response:
    headers = {"Retry-After": str(retry_after)}
    message = "too many form submissions from this address; try again shortly"
    if not wants_html:
        return problem(429, "Too many requests", message, headers=headers)
    problems = [{"label": "Too many submissions", "message": f"please try again in {retry_after} seconds"}]
    return templates.TemplateResponse(
        request,
        "form_error.html",
        {"workspace": ws.config.workspace.name, "problems": problems, "heading": "Please wait a moment"},
        status_code=429,
        headers=headers,
    )


def _refused(request: Request, ws: Any, exc: InvalidInput | Conflict, wants_html: bool) -> Response:
    if not wants_html:
        return problem(exc.status, exc.title, exc.message, [p.as_dict() for p in exc.problems])
    problems = [
        {"label": _label(p.field), "message": p.message} for p in exc.problems or [Problem("form", exc.message)]
    ]
    return templates.TemplateResponse(
        request,
        "form_error.html",
        {"workspace": ws.config.workspace.name, "problems": problems},
        status_code=exc.status,
    )
