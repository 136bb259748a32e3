"""Public web forms: ``GET /forms/{context}`` serves a form for a capture context, ``POST /w2l``
takes any Web-to-Lead compatible form (no API key; rate-limited per IP, honeypot, minimum time to
submit, size cap) and either redirects to ``retURL`` (allowed hosts only) or thanks the person."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from leadflow.api import idempotency
from leadflow.api.deps import workspace
from leadflow.api.errors import problem
from leadflow.capture.spam import FORM_SECRET, RateLimiter, seconds_since, secret, timing_token
from leadflow.capture.web_to_lead import form_names, form_to_lead, return_url
from leadflow.errors import Conflict, InvalidInput, Problem
from leadflow.pipeline import process
from leadflow.web.templates import templates

router = APIRouter(tags=["web forms"])

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
UTM_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)  # carried from the page's URL into the form


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
    return_url(ret_url, rules.web_to_lead.allowed_return_hosts)
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
    carried = {k: v[:100] for k, v in request.query_params.items() if k in UTM_FIELDS}
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
    wait = _limiter(request).allow(client)
    if wait:
        return problem(
            429,
            "Too many requests",
            "too many form submissions from this address; try again shortly",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return problem(415, "Unsupported media type", "send the form as application/x-www-form-urlencoded")
    try:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    except Exception:  # a body the form parser cannot read
        return problem(400, "Bad request", "the form body could not be read")
    wants_html = "text/html" in request.headers.get("accept", "") or "application/json" not in request.headers.get(
        "accept", ""
    )
    try:
        target = return_url(form.get("retURL"), settings.allowed_return_hosts)
    except InvalidInput as exc:
        return _refused(request, ws, exc, wants_html)
    if await run_in_threadpool(_is_bot, request, form, settings.honeypot, settings.min_seconds):
        return _done(request, ws, target, settings.thank_you)
    context = (form.get("lf_context") or form.get("capture_context") or "").strip() or None
    consent_wording = ws.rules.capture.forms[context].consent if context in ws.rules.capture.forms else None
    try:
        payload = form_to_lead(
            form, honeypot=settings.honeypot, referrer=request.headers.get("referer"), consent_wording=consent_wording
        )
        await run_in_threadpool(_capture, ws, request, client, payload)
    except InvalidInput as exc:
        return _refused(request, ws, InvalidInput(exc.message, form_names(form, exc.problems)), wants_html)
    except Conflict as exc:  # an erased person's email or phone (privacy.after_erasure)
        # a public page must not tell a stranger that someone with this address asked to be erased
        neutral = [Problem(p.field, "cannot be used on this form; please contact us directly") for p in exc.problems]
        return _refused(request, ws, Conflict("we cannot take this submission", form_names(form, neutral)), wants_html)
    return _done(request, ws, target, settings.thank_you)


def _form_key(request: Request) -> bytes:
    """The secret that signs form timing tokens (from the database, shared by all processes)."""
    key: bytes | None = getattr(request.app.state, "form_key", None)
    if key is None:
        ws = workspace(request)
        with ws.transaction() as conn:
            key = request.app.state.form_key = secret(conn, FORM_SECRET, ws.clock.now())
    return key


def _is_bot(request: Request, form: dict[str, str], honeypot: str, min_seconds: float) -> bool:
    if form.get(honeypot, "").strip():
        return True
    token = form.get("_lf_ts")
    if not token:
        return False  # a form leadflow did not serve: not timed
    elapsed = seconds_since(_form_key(request), token, int(time.time() * 1000))
    return elapsed is None or elapsed < min_seconds


def _capture(ws: Any, request: Request, client: str, payload: dict[str, Any]) -> None:
    def work(conn: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        result = process(ws, conn, payload, actor="web-form")
        return 201, {"lead_id": result.lead_id, "created": result.created}, {}

    idempotency.run(ws, request, f"form:{client}", payload, work)


def _done(request: Request, ws: Any, target: str | None, message: str) -> Response:
    if target:
        return RedirectResponse(target, status_code=303)
    return templates.TemplateResponse(
        request, "thanks.html", {"workspace": ws.config.workspace.name, "message": message}
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
