from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.errors import InvalidInput
from leadflow.model.predictor import BASE, Predictor
from leadflow.model.training import time_split, train
from leadflow.model.xeducation import load
from tests.conftest import SHARED_DATA
from tests.model.conftest import synthetic_frame


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    frame, y, times = synthetic_frame()
    return frame, y, times, train(frame, y, times)


def test_time_split_holds_out_the_newest_rows() -> None:
    times = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0]
    split = time_split(times, holdout=0.2, calibrate=0.25)
    assert sorted(times[i] for i in split.holdout) == [8, 9]
    assert max(times[i] for i in split.fit) < min(times[i] for i in split.calibrate)
    assert max(times[i] for i in split.calibrate) < min(times[i] for i in split.holdout)


def test_leaks_are_left_out_unless_forced(trained) -> None:  # type: ignore[no-untyped-def]
    frame, y, times, result = trained
    assert set(result.excluded) == {"sales_status", "deal_days"}
    assert "sales_status" not in result.predictor.encoding.features
    forced = train(frame, y, times, force=["sales_status"])
    assert forced.forced == ["sales_status"]
    assert "sales_status" in forced.predictor.encoding.features
    assert "deal_days" not in forced.predictor.encoding.features


def test_contributions_sum_to_the_margin_and_score_is_the_calibrated_probability(trained) -> None:  # type: ignore[no-untyped-def]
    """Why "13" is arithmetic: base + contributions = margin; a × margin + b = z; 1/(1+e^-z) = p;
    the score is 100 p rounded."""
    frame, _, _, result = trained
    predictor = result.predictor
    X = predictor.encoding.encode(frame)
    margins = predictor.margins(X)
    for i in range(0, 200, 7):
        record = {n: frame.columns[n][i] for n in frame.names}
        full = predictor.predict(record, top=0)
        assert full.base is not None and BASE not in {c["feature"] for c in full.contributions}
        assert math.isclose(sum(c["contribution"] for c in full.contributions) + full.base, full.margin, abs_tol=1e-4)
        assert math.isclose(full.margin, margins[i], abs_tol=1e-6)
        cal = full.calibration
        assert cal["method"] == "linear"
        z = cal["a"] * full.margin + cal["b"]
        assert math.isclose(cal["calibrated_margin"], z, abs_tol=1e-4)
        assert math.isclose(full.probability, 1 / (1 + math.exp(-z)), rel_tol=1e-4)
        assert full.score == round(full.probability * 100)
        top = predictor.predict(record, top=2)
        assert math.isclose(sum(c["contribution"] for c in top.contributions) + top.base, top.margin, abs_tol=1e-4)
        assert len(top.contributions) <= 3  # two, "n other features"


def test_a_stored_model_predicts_exactly_as_trained(trained) -> None:  # type: ignore[no-untyped-def]
    frame, _, _, result = trained
    again = Predictor.load(result.predictor.model_text, result.predictor.meta())
    X = result.predictor.encoding.encode(frame)
    assert np.allclose(again.probabilities(X), result.predictor.probabilities(X))


def test_bad_input_names_the_field() -> None:
    frame, y, times = synthetic_frame(n=20)
    with pytest.raises(InvalidInput) as caught:
        train(frame, y, times)
    assert caught.value.problems[0].field == "rows"
    frame, y, times = synthetic_frame()
    with pytest.raises(InvalidInput) as caught:
        train(frame, y, times, force=["no_such_field"])
    assert caught.value.problems[0].field == "force"
    with pytest.raises(InvalidInput) as caught:
        train(frame, y, times, holdout=0.9)
    assert caught.value.problems[0].field == "holdout"


def test_xeducation_figures() -> None:
    """The issue's figures: leaks excluded by the guard, newest 25% held out."""
    from leadflow.model import evaluation

    frame, y, times, _ = load(SHARED_DATA / "xeducation" / "leads.csv")
    result = train(frame, y, times, holdout=0.25)
    assert {"Tags", "Lead Quality"} <= set(result.excluded)
    p = result.predictor.probabilities(result.predictor.encoding.encode(frame))
    learned = np.concatenate([result.split.fit, result.split.calibrate])
    figures = evaluation.compare(frame, list(result.predictor.encoding.features), y, learned, result.split.holdout, p)
    assert figures["predictive"]["auc"] >= 0.929
    for baseline in ("naive_bayes", "logistic_regression"):
        assert figures["predictive"]["auc"] >= figures[baseline]["auc"] + 0.01
        assert figures["predictive"]["brier"] <= figures[baseline]["brier"]
    assert figures["predictive"]["ties"]["largest_share"] <= 0.10
    assert len(result.split.holdout) == round(len(y) * 0.25)


_records = st.fixed_dictionaries(
    {
        "channel": st.one_of(st.none(), st.sampled_from(["ads", "seo", "referral", "event", "never seen"])),
        "visits": st.one_of(st.none(), st.integers(-5, 500), st.text(max_size=3)),
        "country": st.one_of(st.none(), st.text(max_size=5)),
    }
)


@settings(max_examples=60, deadline=None)
@given(record=_records)
def test_any_lead_gets_a_score_whose_explanation_sums_to_its_margin(record: dict) -> None:  # type: ignore[type-arg]
    predictor = _shared_model().predictor
    prediction = predictor.predict(record, top=3)
    assert 0 <= prediction.score <= 100
    assert math.isclose(
        sum(c["contribution"] for c in prediction.contributions) + prediction.base, prediction.margin, abs_tol=1e-4
    )


_CACHE: dict[str, object] = {}


def _shared_model():  # type: ignore[no-untyped-def]
    if "model" not in _CACHE:
        frame, y, times = synthetic_frame()
        _CACHE["model"] = train(frame, y, times)
    return _CACHE["model"]
