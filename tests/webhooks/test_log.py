"""The delivery log shows every attempt: the API (each delivery with its attempts, and the attempts
alone) and ``leadflow webhooks log``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.clock import FrozenClock
from leadflow.jobs.worker import run_once
from leadflow.pipeline import process
from leadflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.webhooks.test_attempts import SECRET, TASKS, ScriptedReceiver, config_text


def test_the_api_and_the_cli_show_each_attempt(
    tmp_path: Path, db_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)
    receiver = ScriptedReceiver([503, 200])
    root = tmp_path / "w"
    root.mkdir()
    (root / "leadflow.yaml").write_text(config_text(receiver.url), encoding="utf-8")
    ws = Workspace.open(root, database_url=db_url, clock=clock)
    try:
        run_once(ws, TASKS)
        with ws.transaction() as conn:
            process(ws, conn, {"email": "ada@engines.example"})
        run_once(ws, TASKS)
        clock.advance(minutes=5)
        run_once(ws, TASKS)
        with LiveServer(ws) as live:
            page = live.client.get("/api/v1/webhooks/deliveries").json()
            (item,) = page["items"]
            assert (item["status"], item["attempts"]) == ("delivered", 2)
            assert [(a["attempt"], a["status"], a["outcome"], a["error"]) for a in item["attempt_log"]] == [
                (1, 503, "failed", "HTTP 503"),
                (2, 200, "delivered", None),
            ]
            assert all(a["duration_ms"] >= 0 for a in item["attempt_log"])
            flat = live.client.get("/api/v1/webhooks/attempts", params={"event": f"evt_{item['event_id']}"}).json()
            assert [a["status"] for a in flat["items"]] == [200, 503]  # newest first
            first_page = live.client.get("/api/v1/webhooks/attempts", params={"limit": 1}).json()
            rest = live.client.get("/api/v1/webhooks/attempts", params={"cursor": first_page["next_cursor"]}).json()
            assert [a["status"] for a in first_page["items"] + rest["items"]] == [200, 503]
            assert (
                live.client.get("/api/v1/webhooks/attempts", params={"outcome": "failed"}).json()["items"][0]["status"]
                == 503
            )
            assert live.anonymous.get("/api/v1/webhooks/attempts").status_code == 401
        monkeypatch.setenv("LEADFLOW_DATABASE_URL", db_url)
        result = CliRunner().invoke(app, ["webhooks", "log", "-w", str(root), "--json"])
        assert result.exit_code == 0, result.output
        logged = json.loads(result.output)
        assert [(a["attempt"], a["status"], a["outcome"]) for a in logged] == [
            (2, 200, "delivered"),
            (1, 503, "failed"),
        ]
        table = CliRunner().invoke(app, ["webhooks", "log", "-w", str(root)])
        assert table.exit_code == 0 and "503" in table.output and "HTTP 503" in table.output
        bad = CliRunner().invoke(app, ["webhooks", "log", "-w", str(root), "--event", "twelve"])
        assert bad.exit_code == 2
    finally:
        ws.close()
        receiver.close()
