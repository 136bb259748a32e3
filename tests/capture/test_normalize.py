"""Cleaning on the way in: a pure function, so every entry point cleans alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.capture.normalize import checked_email, country_code, e164, slug, tidy_name
from leadflow.capture.service import prepare
from leadflow.errors import InvalidInput

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_email_domain_lowercased_and_key_for_matching() -> None:
    c = prepare({"email": "  Jane.Doe@EXAMPLE.Com "}, default_region="DE", now=NOW)
    assert c.personal["email"] == "Jane.Doe@example.com"
    assert c.email_key == "jane.doe@example.com"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("030 1234567", "DE", "+49301234567"),
        ("+1 (415) 555-0100", "DE", "+14155550100"),
        ("020 7946 0018", "GB", "+442079460018"),
    ],
)
def test_phone_to_e164(raw: str, region: str, expected: str) -> None:
    assert e164(raw, region) == expected


def test_phone_read_in_the_lead_country_before_the_workspace_region() -> None:
    c = prepare({"phone": "020 7946 0018", "country": "GB"}, default_region="DE", now=NOW)
    assert c.personal["phone"] == "+442079460018"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("Germany", "DE"), ("deu", "DE"), ("UK", "GB"), ("United States", "US"), ("usa", "US"), ("Narnia", None)],
)
def test_country_to_iso(raw: str, code: str | None) -> None:
    assert country_code(raw) == code


def test_names_tidied_only_when_shouted_or_whispered() -> None:
    assert tidy_name("  mary   ann ") == "Mary Ann"
    assert tidy_name("O'NEIL") == "O'Neil"
    assert tidy_name("McDonald") == "McDonald"


def test_utm_fills_source_medium_campaign_as_slugs() -> None:
    c = prepare(
        {"email": "a@b.example", "utm_source": "Google Ads", "utm_medium": "CPC", "utm_campaign": "Spring Sale 2026"},
        default_region="DE",
        now=NOW,
    )
    assert (c.fields["source"], c.fields["medium"], c.fields["campaign"]) == ("google_ads", "cpc", "spring_sale_2026")
    assert c.utm["utm_source"] == "Google Ads"
    # an explicit source wins over the UTM tag
    c = prepare({"email": "a@b.example", "source": "partner", "utm_source": "google"}, default_region="DE", now=NOW)
    assert c.fields["source"] == "partner"


def test_blank_strings_are_missing() -> None:
    c = prepare({"email": "a@b.example", "company": "   ", "title": ""}, default_region="DE", now=NOW)
    assert "company" not in c.fields and "title" not in c.fields


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        prepare({"email": "nope", "phone": "xyz", "country": "Narnia"}, default_region="DE", now=NOW)
    assert {p.field for p in caught.value.problems} == {"email", "phone", "country"}


def test_custom_field_names_are_checked() -> None:
    with pytest.raises(InvalidInput) as caught:
        prepare({"email": "a@b.example", "custom": {"Bad Key": 1}}, default_region="DE", now=NOW)
    assert caught.value.problems[0].field.startswith("custom")


def test_slug() -> None:
    assert slug("  LinkedIn Ads ") == "linkedin_ads"
    assert slug("!!!") == "unknown"


# -- the email fast path agrees with email_validator -------------------------------------------

_LOCAL_CHARS = "abcXYZ019.+_-!#$%&'*/=?^`{|}~\"@ é"
_DOMAIN_LABELS = [
    "example", "EXAMPLE", "b", "xn--bcher-kva", "bücher", "-bad", "bad-", "123", "a" * 63, "a" * 64, "", "test",
    "ab--cd", "a-b", "x1", "local", "ONION", "a_b", "1a",
]  # fmt: skip


@given(
    local=st.text(alphabet=_LOCAL_CHARS, min_size=0, max_size=70),
    labels=st.lists(st.sampled_from(_DOMAIN_LABELS), min_size=1, max_size=4),
    tld=st.sampled_from(["com", "DE", "org", "test", "localhost", "c0m", "com0", "x-y", "-x", "123", "", "a" * 63]),
)
@settings(max_examples=1500, deadline=None)
def test_checked_email_accepts_and_normalises_exactly_as_email_validator(
    local: str, labels: list[str], tld: str
) -> None:
    address = f"{local}@{'.'.join([*labels, tld])}"
    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = checked_email(address)
    except EmailNotValidError:
        got = None
    assert got == expected


def test_checked_email_refuses_what_the_fast_path_cannot_judge_alone() -> None:
    assert checked_email("Jane.Doe@EXAMPLE.Com") == "Jane.Doe@example.com"
    for bad in (
        "a..b@example.com",
        ".a@example.com",
        "a@localhost",
        "a@example",
        "a@-x.com",
        "x" * 250 + "@example.com",
    ):
        with pytest.raises(EmailNotValidError):
            checked_email(bad)
