"""The rule model on real leads: X Education's 9,240 leads replayed through the pipeline under
rules written from business sense rank converters well above non-converters."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.xeducation import CONFIG, DATA, load, replay

from leadflow.clock import FrozenClock
from tests.conftest import T0, open_workspace


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root: Path = tmp_path_factory.mktemp("xeducation")
    ws = open_workspace(root, f"sqlite:///{root / 'leadflow.db'}", FrozenClock(T0), CONFIG.read_text())
    result = replay(ws, load(DATA))
    ws.close()
    return result


def test_every_row_became_a_lead(figures: dict) -> None:
    assert figures["leads"] == 9240
    assert figures["conversion_rate"] == pytest.approx(0.385, abs=0.001)


def test_rule_score_ranks_converters_first(figures: dict) -> None:
    assert figures["auc_rule_score"] >= 0.80


def test_conversion_rises_with_grade_and_band(figures: dict) -> None:
    grades = [figures["by_fit_grade"][g]["rate"] for g in ("D", "C", "B", "A")]
    assert grades == sorted(grades)
    bands = [figures["by_score_band"][b]["rate"] for b in ("0-19", "20-39", "40-59", "60-79", "80-100")]
    assert bands == sorted(bands)
    assert figures["mql"]["mql"]["rate"] > 2 * figures["mql"]["not mql"]["rate"]


def test_columns_written_after_contact_are_not_used() -> None:
    payload, _ = load(DATA)[0]
    flat = str(payload)
    for leaking in ("Interested in other courses", "Low in Relevance", "Ringing", "02.Medium"):
        assert leaking not in flat
