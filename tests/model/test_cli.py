"""``leadflow model ...`` on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.clock import FrozenClock
from leadflow.model import registry
from leadflow.workspace import Workspace
from tests.model.conftest import make_history


def test_train_list_activate_evaluate_rollback(sqlite_ws: Workspace, clock: FrozenClock, tmp_path: Path) -> None:
    make_history(sqlite_ws, clock, n=160, leak=False)
    runner = CliRunner()
    w = ["-w", str(sqlite_ws.path)]
    # the CLI runs on the system clock: a generous window keeps every lead's outcome known
    trained = runner.invoke(app, ["model", "train", *w, "--window-days", "30", "--json"])
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.output)["version"]
    listed = runner.invoke(app, ["model", "list", *w, "--json"])
    assert [v["id"] for v in json.loads(listed.output)] == [version]
    assert runner.invoke(app, ["model", "activate", str(version), *w]).exit_code == 0
    with sqlite_ws.reader() as conn:
        assert registry.active_id(conn) == version
    chart = tmp_path / "eval.png"
    evaluated = runner.invoke(app, ["model", "evaluate", *w, "--chart", str(chart), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(evaluated.output)["version"] == version
    predicted = runner.invoke(app, ["model", "predict", "1", *w, "--json"])
    shown = json.loads(predicted.output)
    assert shown["version"] == version and shown["base_value"] is not None
    # the table a person reads: base value, contributions, the margin they sum to, the calibration
    table = runner.invoke(app, ["model", "predict", "1", *w], env={"COLUMNS": "200"}).output
    assert "base value" in table and f"{shown['margin']:+.3f}" in table
    assert f"score = {shown['probability']:.3f} × 100 ≈ {shown['score']}" in table
    report = runner.invoke(app, ["model", "train", *w, "--window-days", "30"], env={"COLUMNS": "200"}).output
    assert "conversion by slice" in report and "shipped:" in report
    assert runner.invoke(app, ["model", "threshold", *w, "--capacity", "3", "--json"]).exit_code == 0
    assert runner.invoke(app, ["model", "rollback", *w]).exit_code == 0
    with sqlite_ws.reader() as conn:
        assert registry.active_id(conn) is None
    failed = runner.invoke(app, ["model", "rollback", *w])
    assert failed.exit_code != 0
