"""Opening a workspace: where it is, which database, and the CLI around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leadflow.workspace import Workspace, resolve_path

LEADFLOW = [sys.executable, "-m", "leadflow.cli"]


def run(
    *args: str, cwd: Path | None = None, env: dict | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEADFLOW, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_workspace_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADFLOW_WORKSPACE", raising=False)
    assert resolve_path(None) == tmp_path
    monkeypatch.setenv("LEADFLOW_WORKSPACE", str(tmp_path / "env"))
    assert resolve_path(None) == tmp_path / "env"
    assert resolve_path(tmp_path / "flag") == tmp_path / "flag"


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{other}")
    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    assert other.exists()
    assert not (tmp_path / "ws" / "leadflow.db").exists()


def test_opening_a_missing_workspace_says_how_to_create_it(tmp_path: Path) -> None:
    from leadflow.errors import LeadflowError

    with pytest.raises(LeadflowError, match="leadflow init"):
        Workspace.open(tmp_path / "nope")


def test_cli_init_add_show(tmp_path: Path) -> None:
    ws = tmp_path / "acme"
    r = run("init", str(ws))
    assert r.returncode == 0, r.stderr
    assert (ws / "leadflow.yaml").read_text().startswith("# leadflow workspace file.")
    assert (ws / "leadflow.db").exists()
    r = run(
        "leads",
        "add",
        "-",
        "--workspace",
        str(ws),
        "--json",
        input=json.dumps(
            {
                "email": "ada@analytical.example",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "company": "Analytical Engines",
                "title": "CTO",
                "capture_context": "demo",
            }
        ),
    )
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    assert added["created"] is True and added["lead"]["assignment"]["owner"] == "ana"
    # LEADFLOW_WORKSPACE stands in for --workspace
    r = run("leads", "show", str(added["lead"]["id"]), "--json", env={"LEADFLOW_WORKSPACE": str(ws)})
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["events"][0]["type"] == "lead_created"
    r = run("leads", "list", "--json", cwd=ws)  # the current directory is the default workspace
    assert [lead["id"] for lead in json.loads(r.stdout)] == [added["lead"]["id"]]


def test_cli_errors_exit_1_with_the_message(tmp_path: Path) -> None:
    ws = tmp_path / "acme"
    run("init", str(ws))
    r = run("leads", "add", '{"email": "nope"}', "--workspace", str(ws))
    assert r.returncode == 1
    assert "email: not a valid email address" in r.stderr
    (ws / "leadflow.yaml").write_text("workspace:\n  name: A\nscoring:\n  mql_treshold: 3\n")
    r = run("config", "check", "--workspace", str(ws))
    assert r.returncode == 1
    assert "line 4: scoring.mql_treshold: unknown key 'mql_treshold'; did you mean 'mql_threshold'?" in r.stderr


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("simulate", "--months", "0", "--workspace", str(tmp_path)).returncode == 2
    assert run("leads", "add", "{not json", "--workspace", str(tmp_path)).returncode == 2


def test_demo_prints_the_report_and_exits_without_serving(tmp_path: Path) -> None:
    r = run("demo", "--months", "1", "--no-serve", "--workspace", str(tmp_path / "demo"), env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "Leads per month" in r.stdout
    assert "net lead flow" in r.stdout
    assert "Funnel by source" in r.stdout
    assert "google_ads" in r.stdout
    r = run("report", "--json", "--workspace", str(tmp_path / "demo"))
    report = json.loads(r.stdout)
    assert sum(m["leads"] for m in report["months"]) > 300
    assert {row["source"] for row in report["funnel_by_source"]} >= {"google_ads", "referral", "outbound"}


def test_the_workspace_does_not_import_domain_services_back() -> None:
    """workspace.py is imported by every domain module; it must not pull the domain back in (that
    closed an import cycle through fifteen files)."""
    import subprocess
    import sys

    code = (
        "import sys, leadflow.workspace; "
        "print(sorted(m for m in sys.modules if m.startswith('leadflow.') and m.endswith('.service')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
