"""Capture rules from the workspace file, compiled once: where a submission came from (source
rules over UTM tags and referrer), what each capture context must ask for (forms), and whether
throwaway addresses are refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from leadflow.config.conditions import Predicate, compile_condition
from leadflow.config.workspace import CaptureSection, FormSpec
from leadflow.errors import InvalidInput, Problem

_SEARCH = ("google.", "bing.", "duckduckgo.", "yahoo.", "ecosia.", "baidu.", "yandex.")
_SOCIAL = ("linkedin.", "facebook.", "twitter.", "x.com", "t.co", "instagram.", "youtube.", "reddit.")


def split_url(url: str) -> SplitResult | None:
    """The parts of a URL (a bare host counts as one), or None when it is not a URL at all."""
    try:
        return urlsplit(url if "//" in url else "//" + url)
    except ValueError:  # e.g. a bracketed host that is no IP address
        return None


def host_of(url: str | None) -> str | None:
    parts = split_url(url) if url else None
    if parts is None:
        return None
    host = parts.netloc.lower().split("@")[-1].split(":")[0]
    return host.removeprefix("www.") or None


def referrer_channel(referrer: str | None, own_url: str | None = None) -> tuple[str, str] | None:
    """(source, medium) implied by a referrer: search engines, social networks, other sites."""
    host = host_of(referrer)
    if not host or (own_url and host == host_of(own_url)):
        return None
    if any(s in host for s in _SEARCH):
        return "organic_search", "organic"
    if any(s in host for s in _SOCIAL):
        return "social", "social"
    return "referral_site", "referral"


@dataclass(frozen=True)
class _SourceRule:
    holds: Predicate
    source: str
    medium: str | None
    campaign: str | None


class CaptureRules:
    def __init__(self, section: CaptureSection) -> None:
        self._source_rules = [
            _SourceRule(compile_condition(r.when), r.source, r.medium, r.campaign) for r in section.source_rules
        ]
        self.forms: dict[str, FormSpec] = dict(section.forms)
        self.block_disposable = section.block_disposable_email
        self.web_to_lead = section.web_to_lead

    def attribute(self, touch: Mapping[str, Any]) -> tuple[str, str | None, str | None] | None:
        """(source, medium, campaign) from the first source rule that holds for this touch."""
        for rule in self._source_rules:
            if rule.holds(touch):
                return rule.source, rule.medium, rule.campaign
        return None

    def check_form(self, context: str | None, given: set[str]) -> None:
        """Refuse a submission that lacks fields its capture context requires, naming every one."""
        form = self.forms.get(context or "")
        if form is None:
            return
        missing = [name for name in form.required if name not in given]
        if missing:
            raise InvalidInput(
                f"the {context} form needs more",
                [Problem(name, f"required for a {context} submission") for name in missing],
            )
