"""Nurture: the public links in its emails (open pixel, tracked clicks, unsubscribe) and, under
``/api/v1/nurture``, the report and a lead's enrolments."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from leadflow.access.keys import ApiKey
from leadflow.api.deps import api_key, workspace
from leadflow.db.tables import leads
from leadflow.errors import LeadflowError, NotFound
from leadflow.nurture import links
from leadflow.nurture.report import report
from leadflow.nurture.service import enrolments_of
from leadflow.pipeline import Activity, record_activities
from leadflow.web.templates import templates

router = APIRouter(tags=["nurture"])
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
Token = Annotated[str, Path(max_length=2000)]
Reader = Annotated[ApiKey, Depends(api_key("leads:read"))]


def _payload(request: Request, token: str) -> dict[str, Any]:
    ws = workspace(request)
    with ws.reader() as conn:
        key = links.signing_key(ws, conn)
    payload = links.verify(key, token)
    if not isinstance(payload.get("l"), int):
        raise NotFound("this link is not valid")
    return payload


def _record(request: Request, payload: dict[str, Any], type_: str, **extra: Any) -> bool:
    """Record what the recipient did; False when the lead is gone (erased or merged away)."""
    ws = workspace(request)
    data = {"enrolment": payload.get("e"), "step": payload.get("s"), "channel": "nurture", **extra}
    try:
        with ws.transaction() as conn:
            erased = conn.execute(select(leads.c.erased_at).where(leads.c.id == payload["l"])).scalar_one_or_none()
            if erased is not None:
                return False
            record_activities(ws, conn, [Activity(type_, payload["l"], ws.clock.now(), actor="recipient", data=data)])
    except LeadflowError:
        return False
    return True


@router.get("/t/o/{token}.gif", include_in_schema=False)
def opened(request: Request, token: Token) -> Response:
    payload = _payload(request, token)
    _record(request, payload, "email_opened")
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@router.get("/t/c/{token}", include_in_schema=False)
def clicked(request: Request, token: Token) -> Response:
    payload = _payload(request, token)
    url = payload.get("u")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise NotFound("this link is not valid")
    _record(request, payload, "email_clicked", url=url)
    return RedirectResponse(url, status_code=302)


@router.get("/u/{token}", include_in_schema=False, response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: Token) -> Response:
    _payload(request, token)  # a confirmation page: link scanners that follow GETs unsubscribe nobody
    ws = workspace(request)
    return templates.TemplateResponse(
        request, "unsubscribe.html", {"workspace": ws.config.workspace.name, "done": False}
    )


@router.post("/u/{token}", include_in_schema=False, response_class=HTMLResponse)
def unsubscribe(request: Request, token: Token) -> Response:
    """The form's button, and RFC 8058 one-click unsubscribe from the mail client."""
    payload = _payload(request, token)
    _record(request, payload, "email_unsubscribed")
    ws = workspace(request)
    return templates.TemplateResponse(
        request, "unsubscribe.html", {"workspace": ws.config.workspace.name, "done": True}
    )


@router.get("/api/v1/nurture/report", summary="Does nurture work? Per-step rates; enrolled vs holdout")
def nurture_report(
    request: Request,
    key: Reader,
    since: Annotated[datetime | None, Query(description="enrolled since (ISO 8601)")] = None,
) -> dict[str, Any]:
    ws = workspace(request)
    with ws.reader() as conn:
        return report(ws, conn, since=since)


@router.get("/api/v1/leads/{lead_id}/nurture", summary="A lead's nurture enrolments")
def lead_enrolments(
    request: Request, key: Reader, lead_id: Annotated[int, Path(ge=1, le=2**62)]
) -> list[dict[str, Any]]:
    ws = workspace(request)
    with ws.reader() as conn:
        return enrolments_of(conn, lead_id)
