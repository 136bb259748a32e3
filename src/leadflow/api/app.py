"""The FastAPI application for one workspace."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request

from leadflow import __version__
from leadflow.access.keys import KeyCache
from leadflow.api import errors
from leadflow.api.activity import router as events_router
from leadflow.api.duplicates import router as duplicates_router
from leadflow.api.errors import problem
from leadflow.api.leads import router as leads_router
from leadflow.api.metrics import router as metrics_router
from leadflow.api.models import router as models_router
from leadflow.api.nurture import router as nurture_router
from leadflow.api.privacy import router as privacy_router
from leadflow.api.reviews import router as reviews_router
from leadflow.api.routing import router as routing_router
from leadflow.api.sales import router as sales_router
from leadflow.api.web_to_lead import router as w2l_router
from leadflow.api.webhooks import router as webhooks_router
from leadflow.dashboard.routes import install as install_dashboard
from leadflow.workspace import Workspace

log = logging.getLogger("leadflow.api")
BODY_LIMIT = 4 * 1024 * 1024  # a 1,000-lead batch is well under this


class Contained:
    """A failure no handler expected becomes a 500 problem, logged by its type and route only.

    Starlette hands such an exception to the server after the 500 is sent, and uvicorn logs its
    traceback, whose messages carry SQL parameters (emails, names) and whose frames hold the
    request. Caught here, inside Starlette's outermost layer, it goes no further.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            log.error("unexpected %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path"))
            if not started:
                await problem(500, "Internal error", "something went wrong on our side; the request was not applied")(
                    scope, receive, send
                )


class BodyLimit:
    """Refuse request bodies over a size (413) before the application reads them."""

    def __init__(self, app: Any, limits: dict[str, int], default: int) -> None:
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, "Payload too large", f"the body is over {limit} bytes")(scope, receive, send)
            return
        if _has_nul(scope.get("query_string", b""), "url"):
            await _nul_problem()(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # Read the (capped) body first: refuse it whole, before the application sees any of it.
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await problem(413, "Payload too large", f"the body is over {limit} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = _refusal(scope, body)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _refusal(scope: Any, body: bytes) -> Any:
    """The problem with a body the application should not see, if any."""
    kind = _body_kind(scope)
    if body and kind != "json" and scope["path"].startswith("/api/"):
        return problem(
            415,
            "Unsupported media type",
            "send the body as JSON (Content-Type: application/json)",
            [{"field": "(body)", "message": "the API takes JSON bodies only"}],
        )
    if kind == "json" and not _is_utf8(body):
        return problem(
            400, "Bad request", "the body is not valid UTF-8", [{"field": "(body)", "message": "JSON must be UTF-8"}]
        )
    if _has_nul(body, kind):
        return _nul_problem()
    return None


def _replay(messages: list[dict[str, Any]], then: Any = None) -> Any:
    pending = list(messages)

    async def receive() -> Any:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


# A JSON escape of NUL: \u0000 after an even number of backslashes (\\u0000 is the text "\u0000").
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def _body_kind(scope: Any) -> str:
    """json, url (form-encoded) or other, from the Content-Type."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type == b"application/json" or content_type.endswith(b"+json"):
        return "json"
    return "url" if content_type == b"application/x-www-form-urlencoded" else "other"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_nul(data: bytes, kind: str) -> bool:
    """NUL characters, raw or as the body's encoding writes them (\u0000 in JSON, %00 in a URL or
    form): no text field may hold one (PostgreSQL cannot store them), so refuse them at the door
    rather than fail deep inside. %00 in JSON text is just text."""
    if b"\x00" in data:
        return True
    if kind == "json":
        return _JSON_NUL.search(data) is not None
    return kind == "url" and b"%00" in data


def _nul_problem() -> Any:
    return problem(
        422,
        "Invalid input",
        "the request contains a NUL character",
        [{"field": "(body)", "message": "text must not contain NUL (\\u0000) characters"}],
    )


def create_app(ws: Workspace) -> FastAPI:
    app = FastAPI(
        title="leadflow",
        version=__version__,
        description="Capture, recognise, enrich, qualify, score and route every lead; measure what works.",
    )
    app.state.workspace = ws
    app.state.keys = KeyCache()
    errors.install(app)

    @app.get("/health", tags=["health"], summary="Liveness and the configuration in force")
    def health(request: Request) -> dict[str, str]:
        workspace: Workspace = request.app.state.workspace
        with workspace.reader() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "database": workspace.dialect, "config_version": workspace.version}

    app.include_router(leads_router)
    app.include_router(models_router)
    app.include_router(reviews_router)
    app.include_router(duplicates_router)
    app.include_router(routing_router)
    app.include_router(events_router)
    app.include_router(sales_router)
    app.include_router(webhooks_router)
    app.include_router(w2l_router)
    app.include_router(nurture_router)
    app.include_router(privacy_router)
    app.include_router(metrics_router)
    install_dashboard(app)
    app.add_middleware(Contained)
    app.add_middleware(BodyLimit, limits={"/w2l": ws.rules.capture.web_to_lead.max_bytes}, default=BODY_LIMIT)
    return app
