"""The ``leadflow`` command as a process: it ends as soon as its work is done (no interpreter
teardown), so what it wrote must be complete, committed and its exit code right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from leadflow.db.tables import leads
from leadflow.pipeline import process
from leadflow.workspace import Workspace


def _leadflow(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return subprocess.run(
        [sys.executable, "-c", "from leadflow.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_output_commits_and_exit_codes_survive_the_quick_exit(tmp_path: Path) -> None:
    ws_dir = str(tmp_path / "ws")
    assert _leadflow("init", ws_dir).returncode == 0
    added = _leadflow("leads", "add", json.dumps({"email": "first@example.com", "company": "C"}), "-w", ws_dir)
    assert added.returncode == 0 and added.stdout.strip(), added.stderr
    ws = Workspace.open(ws_dir)
    with ws.transaction() as conn:  # what the process committed is there for another one
        assert conn.execute(select(leads.c.email)).scalars().all() == ["first@example.com"]
        for i in range(299):  # enough output to fill more than one pipe buffer when listed
            process(ws, conn, {"email": f"p{i}@example.com", "company": f"Company {i}"})
    ws.close()
    listed = _leadflow("leads", "list", "--limit", "1000", "--json", "-w", ws_dir)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)  # the whole output arrived: it parses
    assert len(listed.stdout) > 200_000 and len(rows) == 300
    assert {r["contact"]["email"] for r in rows} == {"first@example.com", *(f"p{i}@example.com" for i in range(299))}
    missing = _leadflow("leads", "show", "999999", "-w", ws_dir)
    assert missing.returncode == 1 and "no lead with id 999999" in missing.stderr
    unknown = _leadflow("no-such-command")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
