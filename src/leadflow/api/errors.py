"""One place that turns errors into RFC 9457 problem responses (``application/problem+json``)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadflow.errors import LeadflowError, Unauthenticated

log = logging.getLogger("leadflow.api")
PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
        if where != "body" and parts:
            return f"{where}.{'.'.join(parts)}"
    return ".".join(parts) or "(body)"


def install(app: FastAPI) -> None:
    @app.exception_handler(LeadflowError)
    async def _leadflow(_request: Request, exc: LeadflowError) -> JSONResponse:
        response = problem(exc.status, exc.title, exc.message, [p.as_dict() for p in exc.problems] or None)
        if isinstance(exc, Unauthenticated):
            response.headers["WWW-Authenticate"] = 'Bearer realm="leadflow"'
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, object]] = []
        malformed = [e for e in exc.errors() if e.get("type") == "json_invalid"]
        if malformed:  # the body is not JSON at all: say where it breaks, not a "field" 8
            err = malformed[0]
            at = err.get("loc", ())[-1]
            reason = (err.get("ctx") or {}).get("error", "not valid JSON")
            return problem(
                400,
                "Bad request",
                "the body is not valid JSON",
                [{"field": "(body)", "message": f"{reason} at character {at}"}],
            )
        for err in exc.errors():
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                message = "unknown field; remove it or check its spelling"
            errors.append({"field": _field(tuple(err.get("loc", ()))), "message": message})
        return problem(422, "Invalid input", "the request is not valid", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's word for a body its JSON parser gave up on (e.g. nested thousands deep)
            return problem(
                400,
                "Bad request",
                "the body could not be read as JSON",
                [{"field": "(body)", "message": "not readable as JSON (is it nested too deeply?)"}],
            )
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception type and route only: payloads may hold personal data.
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem(500, "Internal error", "something went wrong on our side; the request was not applied")
