"""What every router needs: the workspace, and the API key with the scope an endpoint requires."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from leadflow.access.keys import ApiKey, KeyCache, require
from leadflow.dashboard.access import readable_leads
from leadflow.dashboard.routes import current_user
from leadflow.workspace import Workspace

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer lf_...")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: lf_...")


def workspace(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]


def key_cache(request: Request) -> KeyCache:
    return request.app.state.keys  # type: ignore[no-any-return]


def api_key(scope: str) -> Callable[..., ApiKey]:
    """A dependency that authenticates the request's API key and checks it has ``scope``."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
        header: str | None = Security(_header),
    ) -> ApiKey:
        ws = workspace(request)
        presented = bearer.credentials if bearer is not None else header
        authenticate = key_cache(request).authenticate
        if ws.dialect == "sqlite":  # a cache hit, or a local read: inline beats a thread hop
            key = authenticate(ws, presented, ws.clock.now())
        else:
            key = await run_in_threadpool(authenticate, ws, presented, ws.clock.now())
        require(key, scope)
        return key

    return dependency


def viewer(scope: str) -> Callable[..., Any]:
    """A dependency for reads that honour the reader's access: an API key with ``scope`` reads the
    whole workspace (``None``); without a key, a user signed in to the dashboard reads through their
    readable-leads clause (a rep their leads, a manager their team's)."""
    by_key = api_key(scope)

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
        header: str | None = Security(_header),
    ) -> Any:
        if bearer is None and header is None:
            user = await run_in_threadpool(current_user, request)
            if user is not None:
                return readable_leads(user)
        await by_key(request, bearer, header)
        return None

    return dependency
