"""The FastAPI application for one workspace."""

from __future__ import annotations

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

BODY_LIMIT = 4 * 1024 * 1024  # a 1,000-lead batch is well under this


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
        if _has_nul(scope.get("query_string", b"")):
            await _nul_problem(scope, receive, send)
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
        if _has_nul(body):
            await _nul_problem(scope, receive, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(messages: list[dict[str, Any]], then: Any = None) -> Any:
    pending = list(messages)

    async def receive() -> Any:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def _has_nul(data: bytes) -> bool:
    """NUL characters, raw or escaped in JSON or a URL: no text field may hold one (PostgreSQL
    cannot store them), so refuse them at the door rather than fail deep inside."""
    lowered = data.lower()
    return b"\x00" in data or b"\\u0000" in lowered or b"%00" in data


async def _nul_problem(scope: Any, receive: Any, send: Any) -> None:
    await problem(
        422,
        "Invalid input",
        "the request contains a NUL character",
        [{"field": "(body)", "message": "text must not contain NUL (\\u0000) characters"}],
    )(scope, receive, send)


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
    app.add_middleware(BodyLimit, limits={"/w2l": ws.rules.capture.web_to_lead.max_bytes}, default=BODY_LIMIT)
    return app
