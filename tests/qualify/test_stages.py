from __future__ import annotations

import pytest

from leadflow.config.workspace import StageRule, StagesSection
from leadflow.errors import InvalidInput
from leadflow.qualify.stages import StageModel


def stages(rules: list[dict]) -> StageModel:
    return StageModel(StagesSection(), [StageRule.model_validate(r) for r in rules])


RULES = [
    {"to": "prospect", "when": {"field": "email", "exists": True}},
    {"to": "mql", "when": {"field": "score", "gte": 50}},
]


def test_moves_to_the_furthest_stage_whose_rule_holds() -> None:
    m = stages(RULES)
    decision = m.automatic("lead", {"email": "a@b.c", "score": 80})
    assert decision is not None and decision.to == "mql"
    decision = m.automatic("lead", {"email": "a@b.c", "score": 10})
    assert decision is not None and decision.to == "prospect"


def test_never_moves_backwards_or_out_of_closed_states() -> None:
    m = stages(RULES)
    assert m.automatic("sql", {"email": "a@b.c", "score": 80}) is None
    assert m.automatic("disqualified", {"email": "a@b.c", "score": 80}) is None
    assert m.automatic("customer", {"email": "a@b.c", "score": 80}) is None
    decision = m.automatic("nurture", {"score": 80})  # nurture is where leads wait to become ready
    assert decision is not None and decision.to == "mql"


def test_reached_counts_skipped_stages() -> None:
    m = stages(RULES)
    assert m.reached("opportunity", "mql")
    assert not m.reached("mql", "sql")
    assert not m.reached("lost", "lead")


@pytest.mark.parametrize(
    ("current", "to", "reason", "fragment"),
    [
        ("mql", "won", None, "not a stage"),
        ("mql", "mql", None, "already in"),
        ("mql", "disqualified", None, "needs a reason"),
        ("sql", "lead", None, "cannot move back"),
        ("customer", "lost", "churned", "final stage"),
        ("lost", "mql", None, "only be moved to 'recycled'"),
    ],
)
def test_invalid_manual_moves_are_refused(current: str, to: str, reason: str | None, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        stages(RULES).validate(current, to, reason)
    assert fragment in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("current", "to", "reason"),
    [
        ("lead", "sql", None),
        ("mql", "nurture", None),
        ("nurture", "mql", None),
        ("lost", "recycled", "new budget"),
        ("recycled", "prospect", None),
    ],
)
def test_valid_manual_moves(current: str, to: str, reason: str | None) -> None:
    stages(RULES).validate(current, to, reason)
