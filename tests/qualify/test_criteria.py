"""Criteria give a level and a reason; BANT is a configuration of them."""

from __future__ import annotations

from leadflow.config.loader import load_config_text
from leadflow.config.workspace import QualificationSection
from leadflow.qualify.criteria import CriteriaModel, ReviewRules, completeness
from leadflow.workspace import compile_ruleset, starter_config_text

BANT = """\
workspace: {name: BANT}
qualification:
  criteria:
    budget:
      levels:
        - {level: yes, when: {field: custom.budget, gte: 20000}, reason: "meets the 20k minimum"}
      default: no
    authority:
      levels:
        - {level: yes, when: {field: seniority, in: [executive, vp, director]}}
      default: no
    need:
      levels:
        - {level: yes, when: {field: custom.use_case, exists: true}}
      default: no
    timing:
      levels:
        - {level: yes, when: {field: custom.timeline, in: [now, this_quarter]}}
      default: no
  stage_rules:
    - to: sql
      description: BANT complete
      when: {all: [{field: criteria.budget, eq: yes}, {field: criteria.authority, eq: yes}, {field: criteria.need, eq: yes}, {field: criteria.timing, eq: yes}]}
"""


def test_bant_is_four_criteria_and_a_stage_rule() -> None:
    rules = compile_ruleset(load_config_text(BANT))
    lead = {"seniority": "vp", "custom": {"budget": 25000, "use_case": "forecasting", "timeline": "now"}}
    lead["criteria"] = rules.criteria.evaluate(lead)
    assert lead["criteria"]["budget"] == {"level": "yes", "reason": "meets the 20k minimum"}
    assert {k: v["level"] for k, v in lead["criteria"].items()} == {
        "completeness": "insufficient",
        "budget": "yes",
        "authority": "yes",
        "need": "yes",
        "timing": "yes",
    }
    decision = rules.stages.automatic("lead", lead)
    assert decision is not None and decision.to == "sql" and decision.why == "BANT complete"
    lead["custom"]["timeline"] = "next_year"
    lead["criteria"] = rules.criteria.evaluate(lead)
    assert lead["criteria"]["timing"] == {"level": "no", "reason": "no rule matched"}
    assert rules.stages.automatic("lead", lead) is None


def test_starter_criteria_read_the_lead_and_its_engagement() -> None:
    rules = compile_ruleset(load_config_text(starter_config_text()))
    lead = {
        "company_size": "201-1000",
        "industry": "software",
        "seniority": "manager",
        "employees": 300,
        "source": "partner",
        "capture_context": "newsletter",
        "score_detail": {"engagement": {"pricing_page": 12.5}},
        "custom": {"timeline": "asap"},
    }
    levels = {k: v["level"] for k, v in rules.criteria.evaluate(lead).items()}
    assert levels == {
        "fit": "high",
        "intent": "high",
        "need": "unknown",
        "timing": "now",
        "authority": "influencer",
        "budget": "unknown",
        "value": "medium",
        "source_quality": "high",
        "completeness": "insufficient",
    }


def test_first_matching_level_wins_else_default() -> None:
    section = QualificationSection.model_validate(
        {
            "criteria": {
                "value": {
                    "levels": [
                        {"level": "high", "when": {"field": "employees", "gte": 1000}},
                        {"level": "medium", "when": {"field": "employees", "gte": 100}},
                    ],
                    "default": "low",
                    "default_reason": "small or unknown",
                }
            }
        }
    )
    model = CriteriaModel(section)
    assert model.evaluate({"employees": 5000})["value"]["level"] == "high"
    assert model.evaluate({"employees": 150})["value"] == {"level": "medium", "reason": "employees gte 100"}
    assert model.evaluate({})["value"] == {"level": "low", "reason": "small or unknown"}


def test_completeness_levels() -> None:
    assert completeness({"email": "a@b.c", "first_name": "A", "company": "B"})["level"] == "complete"
    assert completeness({"email": "a@b.c"}) == {"level": "partial", "reason": "missing name, company"}
    assert completeness({"company": "B"})["level"] == "insufficient"


def test_competitors_and_review_rules() -> None:
    section = QualificationSection.model_validate(
        {
            "competitor_domains": ["www.Rival.example"],
            "review": [{"id": "rival", "reason": "a competitor", "when": {"field": "is_competitor", "eq": True}}],
        }
    )
    model, review = CriteriaModel(section), ReviewRules(section)
    assert model.is_competitor({"domain": "rival.example"})
    assert not model.is_competitor({"domain": "friend.example"})
    flag = review.check({"is_competitor": True})
    assert flag is not None and (flag.rule, flag.reason) == ("rival", "a competitor")
    assert review.check({"is_competitor": False}) is None


def test_config_refuses_criteria_in_scoring_and_unknown_criteria() -> None:
    import pytest

    from leadflow.errors import ConfigError

    bad = BANT + "scoring:\n  rules:\n    - {id: r, points: 5, when: {field: criteria.budget, eq: yes}}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(bad)
    assert "scoring rules cannot use them" in caught.value.problems[0].message
    bad = BANT.replace("criteria.timing", "criteria.timeing")
    with pytest.raises(ConfigError) as caught:
        load_config_text(bad)
    assert "unknown criterion 'timeing'" in caught.value.problems[0].message
