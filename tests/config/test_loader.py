"""The workspace file: valid files load; broken ones are refused naming the key, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadflow.config.loader import load_config_file, load_config_text
from leadflow.errors import ConfigError
from leadflow.workspace import Workspace, starter_config_text

MINIMAL = """\
workspace:
  name: Acme
"""


def problems_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    return [(p.field, p.line, p.message) for p in caught.value.problems]


def test_starter_file_is_valid_and_versioned() -> None:
    loaded = load_config_text(starter_config_text())
    assert loaded.config.workspace.name == "Northwind Analytics"
    assert len(loaded.version) == 12
    # the version is a hash of the meaning, not of comments and layout
    assert load_config_text("# a comment\n" + starter_config_text()).version == loaded.version


def test_minimal_file_gets_defaults() -> None:
    config = load_config_text(MINIMAL).config
    assert config.stages.order == ["lead", "prospect", "mql", "sql", "opportunity", "customer"]
    assert config.scoring.mql_threshold == 50
    assert config.workspace.currency == "EUR"


def test_yaml_syntax_error_names_the_line() -> None:
    [(field, line, message)] = problems_of("workspace:\n  name: Acme\nscoring:\n  rules: [\n    {id: a\n")
    assert field == "(syntax)"
    assert line is not None and line >= 5
    assert "flow" in message or "expected" in message


def test_unknown_key_is_refused_with_a_suggestion_and_its_line() -> None:
    [(field, line, message)] = problems_of(MINIMAL + "scoring:\n  mql_treshold: 60\n")
    assert field == "scoring.mql_treshold"
    assert line == 4
    assert "did you mean 'mql_threshold'" in message


def test_wrong_type_names_key_line_and_value() -> None:
    [(field, line, message)] = problems_of(MINIMAL + "scoring:\n  mql_threshold: high\n")
    assert (field, line) == ("scoring.mql_threshold", 4)
    assert "integer" in message and "'high'" in message


def test_missing_required_key() -> None:
    [(field, line, message)] = problems_of("workspace:\n  currency: EUR\n")
    assert field == "workspace.name"
    assert line == 1
    assert message == "required key is missing"


def test_reference_to_unknown_team_points_at_the_owner() -> None:
    text = MINIMAL + (
        "teams:\n  - {id: sales, name: Sales}\n"
        "owners:\n  - {id: ana, name: Ana, team: sales}\n  - {id: ben, name: Ben, team: salse}\n"
        "routing:\n  fallback: {team: sales}\n"
    )
    [(field, line, message)] = problems_of(text)
    assert field == "owners[1].team"
    assert line == 7
    assert "unknown team 'salse'" in message and "did you mean 'sales'" in message


def test_duplicate_keys_are_an_error_not_a_silent_overwrite() -> None:
    [(field, line, message)] = problems_of(MINIMAL + "scoring:\n  mql_threshold: 40\n  mql_threshold: 60\n")
    assert (field, line) == ("scoring.mql_threshold", 5)
    assert "first on line 4" in message


def test_several_problems_are_reported_together() -> None:
    text = MINIMAL + (
        "sla:\n  policies:\n    - {id: hot, first_touch: soon}\n"
        "scoring:\n  rules:\n    - {id: bad, points: 5, when: {field: title, matches: '(unclosed'}}\n"
    )
    found = {(field, line) for field, line, _ in problems_of(text)}
    assert ("sla.policies[0].first_touch", 5) in found
    assert ("scoring.rules[0].when.matches", 8) in found


def test_condition_needs_exactly_one_operator() -> None:
    text = MINIMAL + "scoring:\n  rules:\n    - {id: r, points: 5, when: {field: score, gte: 5, lt: 9}}\n"
    [(field, line, message)] = problems_of(text)
    assert field == "scoring.rules[0].when"
    assert line == 5
    assert "exactly one operator" in message and "gte, lt" in message


def test_condition_on_an_unknown_field() -> None:
    text = MINIMAL + "scoring:\n  rules:\n    - {id: r, points: 5, when: {field: job_title, eq: cto}}\n"
    [(field, line, message)] = problems_of(text)
    assert (field, line) == ("scoring.rules[0].when", 5)
    assert "unknown field 'job_title'" in message


def test_event_fields_only_in_engagement_rules() -> None:
    text = MINIMAL + "scoring:\n  rules:\n    - {id: r, points: 5, when: {field: event.url, contains: pricing}}\n"
    [(_field, _line, message)] = problems_of(text)
    assert "only in rules with `on_event`" in message


def test_unknown_event_type_in_engagement_rule() -> None:
    text = MINIMAL + "scoring:\n  rules:\n    - {id: r, points: 5, on_event: email_open}\n"
    [(field, _line, message)] = problems_of(text)
    assert field == "scoring.rules[0].on_event[0]"
    assert "did you mean 'email_opened'" in message


def test_bad_time_zone_and_region() -> None:
    found = {
        field: message
        for field, _, message in problems_of("workspace:\n  name: A\n  timezone: Berlin\n  default_region: XX\n")
    }
    assert "IANA time zone" in found["workspace.timezone"]
    assert "region" in found["workspace.default_region"]


def test_owners_without_fallback_route() -> None:
    text = MINIMAL + "teams:\n  - {id: sales, name: Sales}\nowners:\n  - {id: ana, name: Ana, team: sales}\n"
    [(field, _line, message)] = problems_of(text)
    assert field == "routing.fallback"
    assert "every lead gets an owner" in message


def test_routing_to_a_team_without_active_owners() -> None:
    text = MINIMAL + (
        "teams:\n  - {id: sales, name: Sales}\n  - {id: empty, name: Empty}\n"
        "owners:\n  - {id: ana, name: Ana, team: sales}\n"
        "routing:\n  rules:\n    - {id: r, team: empty, when: {field: score, gte: 90}}\n  fallback: {team: sales}\n"
    )
    [(field, line, message)] = problems_of(text)
    assert (field, line) == ("routing.rules[0].team", 10)
    assert "no active owners" in message


def test_empty_and_non_mapping_files() -> None:
    assert problems_of("")[0][0] == "workspace.name"
    assert problems_of("- a\n- b\n")[0][0] == "(top level)"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="leadflow init"):
        load_config_file(tmp_path / "leadflow.yaml")


def test_init_refuses_an_invalid_file_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Workspace.init(tmp_path / "ws", config_text=MINIMAL + "scoring:\n  mql_treshold: 60\n")
    assert not (tmp_path / "ws" / "leadflow.yaml").exists()
    assert not (tmp_path / "ws" / "leadflow.db").exists()


def test_open_refuses_an_invalid_file_before_touching_the_database(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "leadflow.yaml").write_text(MINIMAL + "owners: 5\n")
    with pytest.raises(ConfigError) as caught:
        Workspace.open(root)
    assert caught.value.problems[0].field == "owners"
    assert caught.value.problems[0].line == 3
    assert not (root / "leadflow.db").exists()
