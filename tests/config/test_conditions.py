"""Conditions compile to predicates that mean what they say."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from leadflow.config.conditions import Condition, compile_condition, describe

parse = TypeAdapter(Condition).validate_python


@pytest.mark.parametrize(
    ("cond", "lead", "expected"),
    [
        ({"field": "score", "gte": 60}, {"score": 60}, True),
        ({"field": "score", "gt": 60}, {"score": 60}, False),
        ({"field": "score", "lt": 10}, {"score": None}, False),
        ({"field": "score", "lte": 10}, {"score": "7"}, True),
        ({"field": "country", "in": ["DE", "AT"]}, {"country": "de"}, True),
        ({"field": "country", "not_in": ["DE", "AT"]}, {"country": "FR"}, True),
        ({"field": "title", "matches": "(?i)\\bcto\\b"}, {"title": "Acting CTO"}, True),
        ({"field": "title", "matches": "(?i)\\bcto\\b"}, {"title": None}, False),
        ({"field": "company", "contains": "gmbh"}, {"company": "Acme GmbH"}, True),
        ({"field": "email_domain", "ends_with": ".de"}, {"email_domain": "shop.DE"}, True),
        ({"field": "website", "starts_with": "https"}, {"website": "http://x"}, False),
        ({"field": "phone", "exists": True}, {"phone": ""}, False),
        ({"field": "phone", "exists": False}, {}, True),
        ({"field": "is_free_mail", "eq": True}, {"is_free_mail": True}, True),
        ({"field": "custom.plan", "eq": "pro"}, {"custom": {"plan": "Pro"}}, True),
        ({"field": "custom.plan", "eq": "pro"}, {"custom": None}, False),
        ({"field": "event.url", "contains": "/pricing"}, {"event": {"url": "https://x/pricing"}}, True),
        (
            {"all": [{"field": "score", "gte": 50}, {"not": {"field": "stage", "eq": "customer"}}]},
            {"score": 70, "stage": "mql"},
            True,
        ),
        ({"any": [{"field": "score", "gte": 50}, {"field": "grade", "eq": "A"}]}, {"score": 10, "grade": "B"}, False),
    ],
)
def test_predicates(cond: dict, lead: dict, expected: bool) -> None:
    assert compile_condition(parse(cond))(lead) is expected


def test_no_condition_always_holds() -> None:
    assert compile_condition(None)({}) is True
    assert describe(None) == "always"


def test_description_reads_like_the_rule() -> None:
    cond = parse({"all": [{"field": "score", "gte": 70}, {"field": "country", "in": ["DE"]}]})
    assert describe(cond) == "(score gte 70) and (country in ['DE'])"
