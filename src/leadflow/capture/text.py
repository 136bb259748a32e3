"""Text as people meant it: control characters stripped on the way in, shown escaped on the way out.

A form field holding ``"\\x1b[31m"`` would otherwise be stored as sent and recolour (or rewrite) the
terminal of whoever prints the lead. Capture removes terminal escape sequences whole, then every
other control character (C0, DEL, C1); tabs and line breaks survive only in fields that may span
lines (notes, custom values, consent wording), elsewhere they become a space.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Terminal escape sequences, removed whole: CSI (ESC [ or the C1 CSI), OSC/DCS/APC/PM/SOS strings up
# to their terminator, and two-character escapes (ESC followed by one character).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x7e]?"
)
_LINE_BREAKS = re.compile(r"\r\n?")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE_LIKE = re.compile(r"[\t\n\r\x0b\x0c]")

MULTILINE_FIELDS = frozenset({"notes", "text"})


def clean_text(value: str, *, multiline: bool = False) -> str:
    """The text without terminal escapes and control characters (see the module docstring)."""
    if value.isprintable():
        return value  # the common case: nothing to do
    value = _ESCAPES.sub("", value)
    if multiline:
        return _CONTROL_MULTILINE.sub("", _LINE_BREAKS.sub("\n", value))
    return _CONTROL_LINE.sub("", _SPACE_LIKE.sub(" ", value))


def clean_fields(data: Any, *, multiline: frozenset[str] = MULTILINE_FIELDS) -> Any:
    """A submitted mapping with every text in it cleaned: its own fields (single-line unless named
    in ``multiline``), and the values of nested mappings (custom fields, consent wording) as
    multi-line text."""
    if not isinstance(data, Mapping):
        return data
    out: dict[Any, Any] = {}
    for key, value in data.items():
        if isinstance(value, str):
            out[key] = clean_text(value, multiline=key in multiline)
        elif isinstance(value, Mapping):
            out[key] = {k: clean_text(v, multiline=True) if isinstance(v, str) else v for k, v in value.items()}
        else:
            out[key] = value
    return out


def shown(value: object) -> str:
    """A value as a terminal may print it: control characters (stored before capture stripped
    them, or arriving by another path) appear as visible escapes such as ``\\x1b``."""
    text = str(value)
    if text.isprintable():
        return text
    return _CONTROL_LINE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
