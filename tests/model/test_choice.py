"""Training chooses between gradient boosting, logistic regression, naive Bayes and their blends
on the newest rows before the holdout, copes with drift, spreads its scores, and its leakage
guard gives the same verdict whatever the holdout share."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from leadflow.model import evaluation
from leadflow.model.frame import Frame
from leadflow.model.predictor import Predictor
from leadflow.model.training import recency_weights, train
from tests.model.conftest import synthetic_frame


def drifting_frame(n: int = 4000, seed: int = 11) -> tuple[Frame, list[int], list[int]]:
    """Leads whose conversion rate rises from ~5% to ~30% over time while what predicts it moves:
    early on the channel decides, later the number of visits and the plan."""
    rng = random.Random(seed)
    records, y = [], []
    for i in range(n):
        age = i / n  # 0 oldest, 1 newest
        channel = rng.choice(("ads", "seo", "referral", "event"))
        visits = rng.randint(0, 15)
        plan = rng.choice(("free", "pro", "team"))
        early = -3.0 + 1.8 * (channel == "ads")
        late = -2.6 + 0.22 * visits + 1.0 * (plan == "pro") + 0.6 * (channel == "referral")
        odds = (1 - age) * early + age * late + 1.5 * age
        y.append(int(rng.random() < 1 / (1 + math.exp(-odds))))
        records.append({"channel": channel, "visits": visits, "plan": plan, "country": rng.choice(("DE", "FR", None))})
    return Frame.from_records(records), y, list(range(n))


def _holdout_figures(frame: Frame, y: list[int], result) -> dict:  # type: ignore[no-untyped-def, type-arg]
    predictor = result.predictor
    p = predictor.probabilities(predictor.encoding.encode(frame))
    learned = np.concatenate([result.split.fit, result.split.calibrate])
    return evaluation.compare(frame, list(predictor.encoding.features), y, learned, result.split.holdout, p)


def test_on_drifting_data_the_shipped_model_beats_every_baseline_on_the_holdout() -> None:
    frame, y, times = drifting_frame()
    result = train(frame, y, times, holdout=0.25)
    figures = _holdout_figures(frame, y, result)
    best_auc = max(figures[b]["auc"] for b in ("naive_bayes", "logistic_regression"))
    best_brier = min(figures[b]["brier"] for b in ("naive_bayes", "logistic_regression"))
    assert figures["predictive"]["auc"] >= best_auc
    assert figures["predictive"]["brier"] <= best_brier
    # recent outcomes weigh more: a recency-weighted candidate was chosen for this data
    chosen = [c for c in result.report["candidates"] if c["chosen"]]
    assert chosen and any(c["recency_half_life"] is not None for c in chosen)
    # the report says what was chosen and why, with every candidate's validation figures
    assert result.report["why"].startswith(("the blend", "gradient boosting", "logistic", "naive"))
    assert {c["model"] for c in result.report["candidates"]} == {
        "gradient_boosting",
        "logistic_regression",
        "naive_bayes",
    }
    assert sum(b["weight"] for b in result.report["blend"]) == pytest.approx(1.0)


def test_the_choice_is_made_without_the_holdout() -> None:
    """Changing the holdout's outcomes changes nothing in what is trained."""
    frame, y, times = drifting_frame(n=1500)
    first = train(frame, y, times, holdout=0.25)
    flipped = list(y)
    for i in first.split.holdout:
        flipped[i] = 1 - flipped[i]
    second = train(frame, flipped, times, holdout=0.25)
    assert first.report["why"] == second.report["why"]
    X = first.predictor.encoding.encode(frame)
    assert np.allclose(first.predictor.probabilities(X), second.predictor.probabilities(X))


@pytest.mark.parametrize("kind", ["gradient_boosting", "logistic_regression", "naive_bayes"])
def test_each_kind_explains_itself_and_survives_storage(kind: str) -> None:
    frame, y, times = drifting_frame(n=1500)
    result = train(frame, y, times, kinds=(kind,))
    predictor = result.predictor
    assert predictor.kind == kind
    again = Predictor.load(predictor.model_text, predictor.meta())
    X = predictor.encoding.encode(frame)
    assert np.allclose(again.probabilities(X), predictor.probabilities(X))
    for i in range(0, 1500, 97):
        record = {n: frame.columns[n][i] for n in frame.names}
        p = again.predict(record, top=0)
        assert math.isclose(sum(c["contribution"] for c in p.contributions) + p.base, p.margin, abs_tol=1e-4)
        assert math.isclose(p.probability, predictor.probabilities(X[i : i + 1])[0], rel_tol=1e-6)


def test_a_version_stored_before_blends_scores_as_before() -> None:
    frame, y, times = synthetic_frame(n=600)
    trees = train(frame, y, times, kinds=("gradient_boosting",)).predictor
    old_meta = {"encoding": trees.encoding.as_dict(), "calibration": {"method": "platt", "a": 1.2, "b": -0.1}}
    legacy = Predictor.load(trees.model_text, old_meta)
    X = trees.encoding.encode(frame)
    raw = trees.booster.predict(X)
    expected = 1 / (1 + np.exp(-(1.2 * np.log(raw / (1 - raw)) - 0.1)))
    assert np.allclose(legacy.probabilities(X), expected)
    record = {n: frame.columns[n][0] for n in frame.names}
    assert legacy.predict(record).calibration["method"] == "platt"


def test_scores_spread_no_plateaus() -> None:
    """Calibration is a line on the margin, not steps: leads with different features get
    different scores, so no score holds more than a tenth of the holdout."""
    frame, y, times = drifting_frame()
    result = train(frame, y, times)
    X = result.predictor.encoding.encode(frame)
    p = result.predictor.probabilities(X)[result.split.holdout]
    ties = evaluation.ties(p, X[result.split.holdout])
    assert ties["largest_share"] <= 0.10 or ties["identical_features"]
    assert ties["largest_share"] <= 0.10


def test_deciles_keep_equal_scores_together() -> None:
    p = np.array([0.9] * 30 + [0.5] * 50 + [0.1] * 20)
    t = np.array([1] * 10 + [0] * 20 + [1] * 25 + [0] * 25 + [0] * 20, dtype=float)
    deciles = evaluation.gains(p, t)
    assert [d["leads"] for d in deciles] == [30, 50, 20]
    assert [d["rate"] for d in deciles] == [round(10 / 30, 4), 0.5, 0.0]
    # the same scores in any row order give the same table
    shuffled = np.random.default_rng(1).permutation(100)
    assert evaluation.gains(p[shuffled], t[shuffled]) == deciles


def _leaky_in_the_past(n: int = 3000, seed: int = 5) -> tuple[Frame, list[int], list[int]]:
    """``call_minutes`` is written after the call in the older half (it all but names the
    outcome there) and is noise later: over all rows its AUC is below the limit."""
    rng = random.Random(seed)
    records, y = [], []
    for i in range(n):
        visits = rng.randint(0, 10)
        won = int(rng.random() < 1 / (1 + math.exp(-(-1.2 + 0.15 * visits))))
        minutes = (won * 20 + rng.random() * 12) if i < n // 2 else rng.random() * 32
        records.append({"visits": visits, "call_minutes": minutes, "channel": rng.choice(("a", "b", "c"))})
        y.append(won)
    return Frame.from_records(records), y, list(range(n))


def test_the_leakage_guard_does_not_depend_on_the_holdout_share() -> None:
    frame, y, times = _leaky_in_the_past()
    verdicts = []
    for holdout in (0.05, 0.25, 0.5):
        result = train(frame, y, times, holdout=holdout)
        checks = {c.feature: c for c in result.checks}
        assert set(checks) == set(frame.names)  # every field examined, each with its reason
        assert checks["call_minutes"].left_out and "one period of time" in checks["call_minutes"].reason
        assert not checks["visits"].left_out and checks["visits"].reason.startswith("kept:")
        assert "call_minutes" in result.excluded
        verdicts.append({f: (c.left_out, c.reason) for f, c in checks.items()})
    assert verdicts[0] == verdicts[1] == verdicts[2]


def test_recency_weights_halve_over_the_half_life() -> None:
    stamps = np.array([0.0, 50.0, 100.0])
    w = recency_weights(stamps, 0.5)
    assert w[2] / w[1] == pytest.approx(2.0) and w[1] / w[0] == pytest.approx(2.0)
    assert w.mean() == pytest.approx(1.0)
    assert np.all(recency_weights(stamps, None) == 1.0)


def test_the_auc_interval_says_how_much_a_few_conversions_can_tell() -> None:
    few = evaluation.auc_interval(0.88, 5, 456)
    many = evaluation.auc_interval(0.88, 900, 1400)
    assert few is not None and many is not None
    assert few[0] < 0.88 < few[1] and many[0] < 0.88 < many[1]
    assert (few[1] - few[0]) > 5 * (many[1] - many[0])
    assert evaluation.auc_interval(0.9, 0, 100) is None
