"""Matching as pure functions: normalisation, comparators, weights, decisions, settings."""

from __future__ import annotations

import pytest

from leadflow.config.identity import Comparison, MatchSettings
from leadflow.config.loader import load_config_text
from leadflow.errors import ConfigError
from leadflow.identity.matching import MatchModel, key_hash
from leadflow.identity.normalize import canonical_first, company_key, email_key
from leadflow.workspace import starter_config_text


def model(**kw: object) -> MatchModel:
    return MatchModel(MatchSettings(**kw))  # type: ignore[arg-type]


def test_email_provider_rules() -> None:
    assert email_key("J.O.Hn.Smith+Leads@GoogleMail.com") == "johnsmith@gmail.com"
    assert email_key("john.smith+x@outlook.com") == "john.smith@outlook.com"
    assert email_key("john.smith+x@acme.io") == "john.smith+x@acme.io"  # unknown provider: as given
    assert email_key("J.Smith@Gmail.com", provider_rules=False) == "j.smith@gmail.com"


def test_company_suffixes_and_nicknames() -> None:
    assert company_key("ACME, Inc.") == company_key("Acme GmbH & Co. KG") == company_key("acme") == "acme"
    assert company_key("Leclerc Logistics B.V.") == "leclerc logistics"
    assert company_key("The Group") == "group"  # a suffix-only name keeps its last word
    assert canonical_first("bob") == canonical_first("robert") == "robert"


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ({"first_name": "Robert", "last_name": "Miller"}, {"first_name": "Robert", "last_name": "Miller"}, "exact"),
        ({"first_name": "Bob", "last_name": "Miller"}, {"first_name": "Robert", "last_name": "Miller"}, "nickname"),
        ({"first_name": "Miller", "last_name": "Robert"}, {"first_name": "Robert", "last_name": "Miller"}, "swapped"),
        ({"first_name": "Robret", "last_name": "Miller"}, {"first_name": "Robert", "last_name": "Miller"}, "fuzzy"),
        ({"first_name": "Rachel", "last_name": "Miller"}, {"first_name": "Robert", "last_name": "Miller"}, "initial"),
        ({"first_name": "Ann", "last_name": "Lee"}, {"first_name": "Robert", "last_name": "Miller"}, "else"),
    ],
)
def test_name_levels(a: dict[str, str], b: dict[str, str], level: str) -> None:
    m = model(comparisons=[Comparison(field="name")])
    assert m.compare(m.prepare(a), m.prepare(b)).evidence["name"]["level"] == level


def test_email_levels() -> None:
    m = model(comparisons=[Comparison(field="email")])

    def level(a: str, b: str) -> str:
        return m.compare(m.prepare({"email": a}), m.prepare({"email": b})).evidence["email"]["level"]

    assert level("john.smith+news@gmail.com", "johnsmith@gmail.com") == "exact"
    assert level("maida.oberhauser@stangl.at", "maida.eberhauser@stangl.at") == "fuzzy"  # typo mid-address
    assert level("john.smith@acme.io", "john.smith@gmail.com") == "local"
    assert level("b@acme.io", "c@acme.io") == "else"


def test_custom_comparators() -> None:
    m = model(
        comparisons=[
            Comparison(field="custom.budget", comparator="numeric", tolerance=500),
            Comparison(field="custom.born", comparator="date", tolerance=3),
            Comparison(field="city", comparator="similarity"),
            Comparison(field="country", comparator="exact"),
        ]
    )
    a = m.prepare({"custom": {"budget": 10_000, "born": "1980-05-01"}, "city": "München", "country": "DE"})
    b = m.prepare({"custom": {"budget": "10300", "born": "1980-05-03"}, "city": "Munchen", "country": "AT"})
    evidence = m.compare(a, b).evidence
    assert {f: e["level"] for f, e in evidence.items()} == {
        "custom.budget": "close",
        "custom.born": "close",
        "city": "exact",  # accents fold away
        "country": "else",
    }
    assert evidence["country"]["weight"] < 0 < evidence["custom.budget"]["weight"]


def test_weights_make_a_probability_and_two_thresholds_decide() -> None:
    m = model()
    ada = {"email": "ada@analytical.example", "first_name": "Ada", "last_name": "Lovelace", "phone": "+441234567890"}
    same = m.compare(m.prepare(ada), m.prepare({**ada, "email": "ada.l@gmail.com"}))
    assert same.probability > 0.999 and m.decide(same.probability) == "merge"
    assert set(same.agreed()) == {"phone", "name"}
    namesake = m.compare(m.prepare(ada), m.prepare({"first_name": "Ada", "last_name": "Lovelace"}))
    assert m.decide(namesake.probability) == "new"
    assert m.decide(0.9) == "review" and m.decide(0.5) == "new"
    assert m.decide(0.9999, usable=False) == "review"  # nothing to identify the person: never merged unseen


def test_usable_identifier() -> None:
    assert MatchModel.usable({"email": "a@b.c"}) and MatchModel.usable({"phone": "+4930123456"})
    assert MatchModel.usable({"last_name": "Berg", "company": "Acme"})
    assert not MatchModel.usable({"first_name": "Bea", "last_name": "Berg", "city": "Köln"})


def test_blocking_keys_are_shared_by_variants() -> None:
    m = model()
    a = set(m.key_hashes({"email": "bob.miller@gmail.com", "first_name": "Bob", "last_name": "Miller"}))
    b = set(m.key_hashes({"email": "b.o.bmiller+x@gmail.com", "first_name": "Miller", "last_name": "Robert"}))
    assert a & b  # the same mailbox, and the same name pair swapped and nicknamed
    assert key_hash("e:x") == key_hash("e:x") and isinstance(key_hash("e:x"), int)


def test_settings_are_validated_with_key_and_line() -> None:
    text = (
        "version: 1\nworkspace: {name: Acme}\nidentity:\n  match:\n    comparisons:\n"
        "      - {field: custom.born}\n      - {field: email, m: {exactly: 0.9}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    message = str(info.value)
    assert "needs a comparator" in message and "line 6" in message
    with pytest.raises(ConfigError, match="has no level 'exactly'"):
        load_config_text(text.replace("      - {field: custom.born}\n", ""))
    with pytest.raises(ConfigError, match="review_above"):
        load_config_text("version: 1\nworkspace: {name: Acme}\nidentity: {match: {review_above: 0.999}}\n")
    ok = load_config_text(starter_config_text())
    assert ok.config.identity.match.auto_merge_above >= ok.config.identity.match.review_above


def test_survivorship_rules() -> None:
    from datetime import UTC, datetime

    from leadflow.config.identity import Survivorship
    from leadflow.identity.merge import survive

    old = {
        "id": 1,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
        "email": "ada@old.example",
        "email_key": "ada@old.example",
        "company": "Analytical Engines Limited",
        "title": "CTO",
        "source": "referral",
        "consent_email": True,
        "consent_sms": None,
        "custom": {"a": 1, "b": 1},
    }
    new = {
        "id": 2,
        "created_at": datetime(2026, 2, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 1, tzinfo=UTC),
        "email": "ada@new.example",
        "email_key": "ada@new.example",
        "company": "AE Ltd",
        "title": "Chief Technology Officer",
        "phone": "+441234567890",
        "source": "google_ads",
        "consent_email": False,
        "consent_sms": True,
        "custom": {"b": 2},
    }
    rules = Survivorship(fields={"company": "longest", "title": "most_trusted_source"}, source_trust=["referral"])
    changes, trace = survive(old, new, rules)
    assert changes["email"] == "ada@new.example" and changes["email_key"] == "ada@new.example"  # most recent
    assert "company" not in changes  # the longest is the survivor's already
    assert "title" not in changes  # the survivor's source (referral) is trusted more
    assert changes["phone"] == "+441234567890" and trace["phone"] == "only value"
    assert changes["consent_email"] is False and "consent_sms" not in changes  # no beats unknown beats yes
    assert changes["custom"] == {"a": 1, "b": 2}
    assert "source" not in changes  # the first touch keeps its attribution
    flipped, _ = survive(new, old, rules)
    assert flipped["source"] == "referral" and flipped["created_at"] == old["created_at"]
    assert flipped["company"] == "Analytical Engines Limited" and flipped["title"] == "CTO"
