"""Turning a template and a lead into an email: Jinja2 (sandboxed) with the lead's fields, every
link tracked, an open pixel, and an unsubscribe link in the body and in the headers."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from leadflow.config.nurture import Template

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
FIELDS = (
    "first_name",
    "last_name",
    "email",
    "company",
    "title",
    "city",
    "country",
    "industry",
    "source",
    "stage",
    "score",
    "grade",
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    headers: dict[str, str]


def check(template: Template) -> str | None:
    """A syntax problem in the template, or None."""
    for part in (template.subject, template.body):
        try:
            _ENV.parse(part)
        except TemplateSyntaxError as exc:
            return f"line {exc.lineno}: {exc.message}"
    return None


def context(lead: Mapping[str, Any], owner_name: str | None) -> dict[str, Any]:
    out = {f: lead.get(f) or "" for f in FIELDS}
    out["custom"] = dict(lead.get("custom") or {})
    out["owner_name"] = owner_name or ""
    out["name"] = lead.get("first_name") or ""
    return out


def render(
    template: Template,
    lead: Mapping[str, Any],
    *,
    owner_name: str | None,
    track: Callable[[str], str],
    unsubscribe_url: str,
    unsubscribe_mailto: str,
    pixel_url: str,
) -> Rendered:
    values = context(lead, owner_name)
    subject = " ".join(_ENV.from_string(template.subject).render(values).split())[:300]
    body = _ENV.from_string(template.body).render(values).strip()
    text = _URL.sub(lambda m: track(m.group(0)), body)
    text += f"\n\n--\nTo stop these emails: {unsubscribe_url}\n"

    def linked(m: re.Match[str]) -> str:
        url = m.group(0)
        return f'<a href="{html.escape(track(html.unescape(url)))}">{url}</a>'

    paragraphs = "".join(
        f"<p>{_URL.sub(linked, html.escape(p)).replace(chr(10), '<br>')}</p>" for p in body.split("\n\n")
    )
    page = (
        f"<html><body>{paragraphs}"
        f'<p style="font-size:small"><a href="{html.escape(unsubscribe_url)}">Unsubscribe</a></p>'
        f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt=""></body></html>'
    )
    headers = {  # RFC 2369 and RFC 8058 one-click: the URL first, then the mail fallback
        "List-Unsubscribe": f"<{unsubscribe_url}>, <{unsubscribe_mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    return Rendered(subject, text, page, headers)
