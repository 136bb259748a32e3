"""How the columns of someone else's CSV become lead (or event) fields.

A mapping file (``--mapping MAPPING.yaml``)::

    columns:                       # leadflow field: CSV column
      visitor_id: Prospect ID
      source: Lead Source
      consent.email: Do Not Email
      custom.origin: Lead Origin
      custom.visits: TotalVisits
    values:                        # per field, CSV value -> leadflow value
      consent.email: {"Yes": false, "No": true}
    missing: [Select, N/A]         # values that mean "not given" (blank always does)
    numbers: [custom.visits]       # read as numbers
    constants: {capture_context: import}
    date_format: "%d/%m/%Y %H:%M"  # occurred_at, default ISO 8601

Without a mapping, the headers of HubSpot, Salesforce and Pipedrive exports are recognised.
Targets are lead fields, ``consent.<channel>`` and ``custom.<name>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from leadflow.capture.schemas import ConsentIn, EventIn, LeadIn
from leadflow.errors import InvalidInput, Problem

LEAD_TARGETS = tuple(n for n in LeadIn.model_fields if n not in ("consent", "custom")) + tuple(
    f"consent.{n}" for n in ConsentIn.model_fields
)
EVENT_TARGETS = tuple(n for n in EventIn.model_fields if n != "data")
_CUSTOM = re.compile(r"^(custom|data)\.[a-z][a-z0-9_]{0,62}$")

# Headers of common CRM exports (lower-cased, letters and digits only) -> lead field.
KNOWN_HEADERS = {
    # HubSpot contacts
    "firstname": "first_name",
    "lastname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "phonenumber": "phone",
    "phone": "phone",
    "mobilephonenumber": "phone",
    "mobile": "phone",
    "mobilephone": "phone",
    "companyname": "company",
    "company": "company",
    "jobtitle": "title",
    "title": "title",
    "city": "city",
    "stateregion": "state",
    "state": "state",
    "stateprovince": "state",
    "countryregion": "country",
    "country": "country",
    "websiteurl": "website",
    "website": "website",
    "industry": "industry",
    "numberofemployees": "employees",
    "noofemployees": "employees",
    "employees": "employees",
    "originalsource": "source",
    "leadsource": "source",
    "source": "source",
    "createdate": "occurred_at",
    "createddate": "occurred_at",
    "createdat": "occurred_at",
    "description": "notes",
    "notes": "notes",
    "emailoptout": "consent.email_opt_out",
    "donotcall": "consent.do_not_call",
    "utmsource": "utm_source",
    "utmmedium": "utm_medium",
    "utmcampaign": "utm_campaign",
    # Pipedrive persons and leads
    "personname": "name",
    "personemail": "email",
    "personphone": "phone",
    "organizationname": "company",
    "personjobtitle": "title",
    "personorganization": "company",
    "name": "name",
    "fullname": "name",
}


# What a mapping may put in a field: what a cell could have said (YAML's binary and dates are not).
Scalar = StrictStr | StrictBool | StrictInt | StrictFloat | None


class ColumnMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str, Scalar]] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)
    numbers: list[str] = Field(default_factory=list)
    constants: dict[str, Scalar] = Field(default_factory=dict)
    date_format: str | None = None


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def recognise(headers: Sequence[str]) -> ColumnMapping:
    """A mapping from the headers of a CRM export, when no mapping file is given."""
    columns: dict[str, str] = {}
    for header in headers:
        target = KNOWN_HEADERS.get(_key(header))
        if target and target not in columns:
            columns[target] = header
    return ColumnMapping(columns=columns)


def load(path: Path | None, headers: Sequence[str], kind: str) -> ColumnMapping:
    """The mapping for a file: from ``path``, else recognised from the headers. Every column the
    mapping names must exist in the file, and every target must be a field of ``kind``."""
    from leadflow.imports.sales import TARGETS as SALES_TARGETS

    if path is None and kind in SALES_TARGETS:
        # Historical sales files: headers named as the fields are taken as they are.
        mapping = ColumnMapping(columns={h: h for h in headers if h in SALES_TARGETS[kind]})
        if not mapping.columns:
            raise InvalidInput(
                "no known columns",
                [Problem("mapping", f"name the columns {', '.join(SALES_TARGETS[kind])}, or give --mapping")],
            )
        return mapping
    if path is None and kind == "events":
        # Activity files: headers named as the event's fields (type, lead_id, email, ...).
        mapping = ColumnMapping(columns={h: h for h in headers if h in EVENT_TARGETS or _CUSTOM.match(h)})
        if "type" not in mapping.columns:
            raise InvalidInput(
                "no type column",
                [Problem("mapping", "name the columns type, lead_id or email, ...; or give --mapping")],
            )
        return mapping
    if path is None:
        mapping = recognise(headers)
        if not mapping.columns:
            raise InvalidInput(
                "no known columns",
                [Problem("mapping", "none of the headers is one leadflow knows; give --mapping MAPPING.yaml")],
            )
        return mapping
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        mapping = ColumnMapping.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read the mapping {path}", [Problem("mapping", str(exc))]) from None
    except ValidationError as exc:
        raise InvalidInput(
            f"{path.name} is not a valid mapping",
            [Problem("mapping." + ".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()],
        ) from None
    targets = LEAD_TARGETS if kind == "leads" else SALES_TARGETS.get(kind, EVENT_TARGETS)
    if not mapping.columns:
        raise InvalidInput(f"{path.name} maps no column", [Problem("mapping.columns", "name a column for each field")])
    problems = [
        Problem(f"mapping.columns.{target}", f"unknown field; fields: {', '.join(targets)}, custom.<name>")
        for target in (*mapping.columns, *mapping.constants)
        if target not in targets and target not in ("name",) and not _CUSTOM.match(target)
    ]
    problems += [
        Problem(f"mapping.columns.{target}", f"the file has no column {column!r}")
        for target, column in mapping.columns.items()
        if column not in headers
    ]
    if problems:
        raise InvalidInput(f"{path.name} does not fit this file", problems)
    return mapping


def apply(mapping: ColumnMapping, row: Mapping[str, str], *, person: bool = True) -> dict[str, Any]:
    """A CSV row as a lead (or event) payload: nested ``consent`` and ``custom``/``data``. For a
    ``person`` (a lead), a ``name`` column is split into first and last name."""
    missing = {"", *mapping.missing}
    out: dict[str, Any] = {}
    for target, column in mapping.columns.items():
        raw = (row.get(column) or "").strip()
        if raw in missing:
            continue
        value: Any = mapping.values.get(target, {}).get(raw, raw)
        if target in mapping.numbers and isinstance(value, str):
            value = _number(value, target)
        _put(out, target, value)
    for target, value in mapping.constants.items():
        _put(out, target, value)
    if person and "name" in out:
        first, _, last = str(out.pop("name")).partition(" ")
        out.setdefault("first_name", first)
        if last:
            out.setdefault("last_name", last)
    consent = out.get("consent")
    if isinstance(consent, dict):
        if "email_opt_out" in consent:
            consent["email"] = not _truthy(consent.pop("email_opt_out"))
        if "do_not_call" in consent:
            consent["phone"] = not _truthy(consent.pop("do_not_call"))
    if "occurred_at" in out and isinstance(out["occurred_at"], str):
        out["occurred_at"] = _time(out["occurred_at"], mapping.date_format)
    return out


def _put(out: dict[str, Any], target: str, value: Any) -> None:
    if "." in target:
        head, tail = target.split(".", 1)
        out.setdefault(head, {})[tail] = value
    else:
        out[target] = value


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "y", "x")


_GROUPED = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _number(value: str, target: str) -> int | float:
    """A number as written in a cell: 1500, 1,500, 1500.25, 1.5e3; not 1,5 (a decimal comma or a
    typo?), nor NaN or infinity."""
    text = value.replace(",", "") if _GROUPED.fullmatch(value) else value
    try:
        number = float(text)
    except ValueError:
        raise InvalidInput(
            "not a number", [Problem(target, f"{value!r} is not a number (write 1500 or 1,500.5)")]
        ) from None
    if not math.isfinite(number):
        raise InvalidInput("not a number", [Problem(target, f"{value!r} is not a finite number")])
    return int(number) if number.is_integer() and abs(number) < 2**63 else number


def _time(value: str, date_format: str | None) -> str:
    try:
        moment = datetime.strptime(value, date_format) if date_format else datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "not a date", [Problem("occurred_at", f"{value!r} is not a date ({date_format or 'ISO 8601'})")]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
