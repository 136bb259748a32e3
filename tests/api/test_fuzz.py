"""Schemathesis against /openapi.json: whatever it sends, the API answers 4xx, never 5xx
(on SQLite and PostgreSQL: some bad input only fails on one of them)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from leadflow.pipeline import process
from leadflow.workspace import Workspace
from tests.conftest import LiveServer


def test_no_request_makes_the_server_fail(live: LiveServer, ws: Workspace) -> None:
    with ws.transaction() as conn:
        process(ws, conn, {"email": "seed@fuzz.example", "first_name": "Seed", "company": "Fuzz"})  # lead 1 exists
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    headers = {"Authorization": f"Bearer {live.key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    server_errors: list[str] = []
    calls = []
    for operation in operations:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def call(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=live.url, headers=headers)
            calls.append(response.status_code)
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        call()
    assert server_errors == []
    assert len(calls) > 10 * len(operations)
    assert {200, 201, 404, 422} <= set(calls)  # it reached the happy paths and the refusals
