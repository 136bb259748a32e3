"""A proposed configuration replayed over real history: MQL volume, conversions captured and
load per owner against the current configuration."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.clock import FrozenClock
from leadflow.model.backtest import backtest
from leadflow.workspace import Workspace
from tests.model.conftest import make_history


def test_a_lower_threshold_sends_more_mqls_and_catches_at_least_as_many(ws: Workspace, clock: FrozenClock) -> None:
    history = make_history(ws, clock, n=50, leak=False)
    current = ws.loaded.text
    threshold = ws.rules.scoring.mql_threshold
    assert f"mql_threshold: {threshold}" in current
    proposed = current.replace(f"mql_threshold: {threshold}", "mql_threshold: 5")
    result = backtest(ws, proposed)
    assert result["leads"] == 50
    cur, new = result["current"], result["proposed"]
    assert cur["mql_threshold"] == threshold and new["mql_threshold"] == 5
    assert new["mql"] > cur["mql"]
    assert new["conversions_captured"] >= cur["conversions_captured"]
    assert new["converted"] == cur["converted"] == sum(history["converted"].values())
    assert sum(new["mql_per_owner"].values()) + new["unassigned_mql"] == new["mql"]
    assert result["change"]["mql"] == new["mql"] - cur["mql"]
    # the real workspace is untouched by the replays
    with ws.reader() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM leads").scalar_one() == 50


def test_cli_backtest_and_bad_config(sqlite_ws: Workspace, clock: FrozenClock, tmp_path: Path) -> None:
    make_history(sqlite_ws, clock, n=20, leak=False)
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(sqlite_ws.loaded.text.replace("mql_threshold:", "mql_threshold: 5 #"), encoding="utf-8")
    runner = CliRunner()
    root = str(sqlite_ws.path)
    done = runner.invoke(app, ["model", "backtest", "--config", str(proposed), "-w", root, "--json"])
    assert done.exit_code == 0, done.output
    assert '"proposed"' in done.output and '"mql_per_owner"' in done.output
    missing = runner.invoke(app, ["model", "backtest", "--config", str(tmp_path / "nope.yaml"), "-w", root])
    assert missing.exit_code != 0
