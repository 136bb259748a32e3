"""What is left of a record once a person is erased: a pure function over the record and what is
known about the person, so the rules are tested without a database.

Personal is more than the personal columns. Whatever was rendered from personal data is personal
(an email's subject and body), so are the values of a URL's query (``?email=...``), the
``custom.*`` fields the workspace does not declare ``personal: false``, the browser ids the person
was seen with, and any text that repeats one of their values (a note, a reason typed by a rep).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadflow.leads.fields import PERSONAL_FIELDS

ERASED = "[erased]"
# Keys whose value was rendered for or about the person (an email's subject and body, ...).
RENDERED = frozenset({"subject", "body", "html", "text", "preview"})
# Keys that hold a browser id.
BROWSER = frozenset({"visitor_id"})
_URL = re.compile(r"(?:[a-z][a-z0-9+.\-]*://|/)\S*?[?#]", re.IGNORECASE)
_MIN_VALUE = 4  # shorter values (initials, "Li") would blank unrelated words; names are handled by key


def strip_query(url: str) -> str:
    """A URL without its query and fragment (``https://x.example/p?email=a@b`` → ``https://x.example/p``)."""
    match = _URL.match(url)
    return url[: match.end() - 1] if match else url


def _flag(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float)


def _pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({v.strip() for v in values if v and len(v.strip()) >= _MIN_VALUE}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.IGNORECASE)


@dataclass
class Scrubber:
    """The person's values, and the rules that blank them in any record.

    ``values`` (emails, phones, browser ids, notes, free-text custom values such as an address) are
    blanked wherever they appear in text; ``names`` only in running text (a string with a space:
    "Hello Anika"), so a name that is also a word of the product ("Lead", "Mark") leaves stage and
    rule names alone. A one-word custom value ("later") is a choice, not a trace: it leaves the
    custom fields and nothing else.
    """

    values: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    keep_custom: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._values = _pattern(self.values)
        self._names = _pattern(self.names | self.values)

    @classmethod
    def of(
        cls,
        records: Iterable[Mapping[str, Any] | None],
        personal: Iterable[Any],
        *,
        browsers: Iterable[str] = (),
        keep_custom: frozenset[str] = frozenset(),
    ) -> Scrubber:
        """From lead rows or snapshots (``records``) and the ``personal`` parts of events."""
        values: set[str] = set(browsers)
        names: set[str] = set()

        def leaves(data: Any, key: str | None = None, *, custom: bool = False) -> None:
            if isinstance(data, Mapping):
                for k, v in data.items():
                    leaves(v, str(k), custom=custom)
            elif isinstance(data, list | tuple):
                for v in data:
                    leaves(v, key, custom=custom)
            elif isinstance(data, str) and data.strip():
                if custom and " " not in data.strip() and "@" not in data:
                    return  # a code or a choice ("later", "J62"): blanked in the custom fields only
                (names if key in ("first_name", "last_name") else values).add(data)
                if key == "phone" and data.startswith("+"):
                    values.add(data[1:])

        for record in records:
            if not record:
                continue
            leaves({k: record.get(k) for k in (*PERSONAL_FIELDS, "visitor_id")})
            custom = record.get("custom")
            if isinstance(custom, Mapping):
                leaves({k: v for k, v in custom.items() if k not in keep_custom}, custom=True)
        for data in personal:
            leaves(data)
        return cls(values=values, names=names, keep_custom=keep_custom)

    def text(self, value: str) -> str:
        """A text without URL queries or the person's values."""
        value = strip_query(value)
        pattern = self._names if " " in value.strip() else self._values
        return pattern.sub(ERASED, value) if pattern is not None else value

    def custom(self, values: Any) -> dict[str, Any] | None:
        """The custom fields the workspace declares not personal (None when none is left)."""
        if not isinstance(values, Mapping):
            return None
        kept = {k: v for k, v in values.items() if k in self.keep_custom}
        return kept or None

    def data(self, value: Any, key: str | None = None) -> Any:
        """An event's data (or any JSON) with everything personal blanked, the rest kept."""
        if key is not None:
            if (key in PERSONAL_FIELDS or key in BROWSER or key in RENDERED) and not _flag(value):
                return None  # a consent flag under "email" stays; an address goes
            if key == "custom" and isinstance(value, Mapping):
                return self.custom(value)
            if key.startswith("custom.") and key.removeprefix("custom.") not in self.keep_custom:
                return None
        if isinstance(value, Mapping):
            return {k: self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def lead(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A lead row or a merge snapshot of it: personal fields, personal custom fields and browser
        ids blank, URLs without their query."""
        out = dict(row)
        for name in (*PERSONAL_FIELDS, "visitor_id"):
            if name in out:
                out[name] = None
        if "custom" in out:
            out["custom"] = self.custom(out["custom"])
        for name in ("landing_page", "referrer"):
            if isinstance(out.get(name), str):
                out[name] = self.text(out[name])
        return out
