from __future__ import annotations

import pytest

from leadflow.enrich.service import company_size, derive, seniority


def test_business_email_gives_company_domain() -> None:
    out, trace = derive({"email": "x@sales.acme.co.uk"})
    assert out["domain"] == "acme.co.uk"
    assert out["is_free_mail"] is False
    assert "from business email" in trace[0]


def test_free_mail_gives_no_company_domain_but_website_does() -> None:
    out, _ = derive({"email": "x@gmail.com"})
    assert out["is_free_mail"] is True and "domain" not in out
    out, _ = derive({"email": "x@gmail.com", "website": "https://www.shop.example.com/about"})
    assert out["domain"] == "example.com"


@pytest.mark.parametrize(
    ("n", "band"),
    [
        (1, "1-10"),
        (10, "1-10"),
        (11, "11-50"),
        (200, "51-200"),
        (1000, "201-1000"),
        (5000, "1001-5000"),
        (5001, "5000+"),
        (None, None),
    ],
)
def test_size_bands(n: int | None, band: str | None) -> None:
    assert company_size(n) == band


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("CEO & Founder", "executive"),
        ("SVP Marketing", "vp"),
        ("Head of Data", "director"),
        ("Sales Manager", "manager"),
        ("MBA Student", "student"),
        ("Data Analyst", "staff"),
        (None, None),
    ],
)
def test_seniority_from_title(title: str | None, level: str | None) -> None:
    assert seniority(title) == level


def test_country_from_phone_when_missing() -> None:
    out, trace = derive({"phone": "+442079460018"})
    assert out["country"] == "GB"
    assert "from phone" in trace[-1]
    out, _ = derive({"phone": "+442079460018", "country": "DE"})
    assert "country" not in out
