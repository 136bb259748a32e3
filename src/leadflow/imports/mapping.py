"""How the columns of someone else's CSV become lead (or event, deal, spend, revenue) fields.

A mapping file (``--mapping MAPPING.yaml``)::

    columns:                       # leadflow field: CSV column
      external_id: Record ID       # the id in the system the file came from
      visitor_id: Prospect ID
      source: Lead Source
      stage: Lifecycle Stage       # the stage it is in (with values:)
      stage_at: Last Stage Change  # since when (default: its last reached.* date, else its own time)
      reached.customer: Became a Customer Date   # when it reached a stage
      owner: Contact owner         # owner id, email or name
      consent.email: Do Not Email
      custom.origin: Lead Origin
      custom.visits: TotalVisits
    values:                        # per field, CSV value -> leadflow value
      consent.email: {"Yes": false, "No": true}
      stage: {"1": customer, "0": null}
    missing: [Select, N/A]         # values that mean "not given" (blank always does)
    numbers: [custom.visits]       # read as numbers
    constants: {capture_context: import}
    date_format: "%d/%m/%Y %H:%M"  # every date column; default ISO 8601
    date_formats: {reached.customer: "%d.%m.%Y"}   # one column's own format
    timezone: Europe/Berlin        # what dates without an offset are in; default the workspace's

Without a mapping, the headers of HubSpot, Salesforce and Pipedrive exports are recognised.
YAML's ``yes``/``no``/``on``/``off`` are read as the words they are (``{Yes: false}`` maps the cell
``Yes``); only ``true`` and ``false`` are booleans.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from leadflow.capture.schemas import ConsentIn, EventIn, LeadIn
from leadflow.errors import InvalidInput, Problem

# Beyond the lead's own fields, a leads import may say where the lead stands: its stage, when it
# reached each stage, and its owner.
LEAD_EXTRAS = ("stage", "stage_at", "owner")
LEAD_TARGETS = (
    tuple(n for n in LeadIn.model_fields if n not in ("consent", "custom"))
    + tuple(f"consent.{n}" for n in ConsentIn.model_fields)
    + LEAD_EXTRAS
)
EVENT_TARGETS = tuple(n for n in EventIn.model_fields if n != "data")
_CUSTOM = re.compile(r"^(custom|data)\.[a-z][a-z0-9_]{0,62}$")
_REACHED = re.compile(r"^reached\.[a-z][a-z0-9_]{0,31}$")

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
    # where the lead stands in the system it came from: its id, stage, owner, stage dates
    "recordid": "external_id",  # HubSpot
    "contactid": "external_id",
    "leadid": "external_id",  # Salesforce
    "personid": "external_id",  # Pipedrive
    "externalid": "external_id",
    "lifecyclestage": "stage",  # HubSpot
    "leadstatus": "stage",  # Salesforce
    "stage": "stage",
    "contactowner": "owner",  # HubSpot
    "leadowner": "owner",  # Salesforce
    "owner": "owner",  # Pipedrive
    "personowner": "owner",
    "becamealeaddate": "reached.lead",  # HubSpot's "Became a ... Date" columns
    "becameamarketingqualifiedleaddate": "reached.mql",
    "becameasalesqualifiedleaddate": "reached.sql",
    "becameanopportunitydate": "reached.opportunity",
    "becameacustomerdate": "reached.customer",
    "becameanevangelistdate": "reached.customer",
    "converteddate": "reached.opportunity",  # Salesforce: a converted lead became an opportunity
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
    date_formats: dict[str, str] = Field(default_factory=dict)
    timezone: str | None = None


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as YAML 1.2 reads it: only true and false are booleans (``Yes: false`` is the cell
    ``Yes``, not ``True``), so value tables of Yes/No columns mean what they say."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


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


def targets_of(kind: str) -> tuple[str, ...]:
    from leadflow.imports.sales import TARGETS as SALES_TARGETS

    return LEAD_TARGETS if kind == "leads" else SALES_TARGETS.get(kind, EVENT_TARGETS)


def _known(target: str, kind: str) -> bool:
    return (
        target in targets_of(kind)
        or target == "name"
        or bool(_CUSTOM.match(target))
        or (kind == "leads" and bool(_REACHED.match(target)))
    )


def _found(headers: Sequence[str], delimiter: str) -> str:
    shown = ", ".join(repr(h) for h in headers[:12]) + (f", ... ({len(headers)} in all)" if len(headers) > 12 else "")
    name = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(delimiter, repr(delimiter))
    return f"the columns found, splitting by {name}: {shown}" + (
        "; if that is not how the file is split, give --delimiter" if len(headers) <= 1 else ""
    )


def load(path: Path | None, headers: Sequence[str], kind: str, *, delimiter: str = ",") -> ColumnMapping:
    """The mapping for a file: from ``path``, else recognised from the headers. Every column the
    mapping names must exist in the file, and every target must be a field of ``kind``."""
    from leadflow.imports.sales import TARGETS as SALES_TARGETS

    if path is None and kind in SALES_TARGETS:
        # Historical sales files: headers named as the fields are taken as they are.
        mapping = ColumnMapping(
            columns={
                h: h for h in headers if h in SALES_TARGETS[kind] or (_CUSTOM.match(h) and h.startswith("custom."))
            }
        )
        if not mapping.columns:
            raise InvalidInput(
                "no known columns",
                [
                    Problem(
                        "mapping",
                        f"name the columns {', '.join(SALES_TARGETS[kind])}, or give --mapping; "
                        + _found(headers, delimiter),
                    )
                ],
            )
        return mapping
    if path is None and kind == "events":
        # Activity files: headers named as the event's fields (type, lead_id, email, ...).
        mapping = ColumnMapping(columns={h: h for h in headers if h in EVENT_TARGETS or _CUSTOM.match(h)})
        if "type" not in mapping.columns:
            raise InvalidInput(
                "no type column",
                [
                    Problem(
                        "mapping",
                        "name the columns type, lead_id, lead_external_id or email, ...; or give --mapping; "
                        + _found(headers, delimiter),
                    )
                ],
            )
        return mapping
    if path is None:
        mapping = recognise(headers)
        if not mapping.columns:
            raise InvalidInput(
                "no known columns",
                [
                    Problem(
                        "mapping",
                        "none of the headers is one leadflow knows; give --mapping MAPPING.yaml; "
                        + _found(headers, delimiter),
                    )
                ],
            )
        return mapping
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader) or {}
        mapping = ColumnMapping.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read the mapping {path}", [Problem("mapping", str(exc))]) from None
    except ValidationError as exc:
        raise InvalidInput(
            f"{path.name} is not a valid mapping",
            [Problem("mapping." + ".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()],
        ) from None
    if not mapping.columns:
        raise InvalidInput(f"{path.name} maps no column", [Problem("mapping.columns", "name a column for each field")])
    fields = ", ".join(targets_of(kind))
    extra = ", reached.<stage>" if kind == "leads" else ""
    problems = [
        Problem(f"mapping.columns.{target}", f"unknown field; fields: {fields}, custom.<name>{extra}")
        for target in (*mapping.columns, *mapping.constants)
        if not _known(target, kind)
    ]
    absent = [(target, column) for target, column in mapping.columns.items() if column not in headers]
    problems += [
        Problem(f"mapping.columns.{target}", f"the file has no column {column!r}; {_found(headers, delimiter)}")
        for target, column in absent[:1]
    ] + [Problem(f"mapping.columns.{target}", f"the file has no column {column!r}") for target, column in absent[1:]]
    problems += [
        Problem(f"mapping.date_formats.{target}", "not a column the mapping names")
        for target in mapping.date_formats
        if target not in mapping.columns and target not in mapping.constants
    ]
    if mapping.timezone is not None:
        try:
            ZoneInfo(mapping.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                Problem("mapping.timezone", f"{mapping.timezone!r} is not a time zone (e.g. Europe/Berlin)")
            )
    if problems:
        raise InvalidInput(f"{path.name} does not fit this file", problems)
    return mapping


def date_fields(kind: str, mapping: ColumnMapping) -> set[str]:
    """The targets read as times in this kind of file."""
    from leadflow.imports.sales import DATE_FIELDS

    if kind == "leads":
        return {"occurred_at", "stage_at", *(t for t in (*mapping.columns, *mapping.constants) if _REACHED.match(t))}
    if kind == "events":
        return {"occurred_at"}
    return set(DATE_FIELDS)


def apply(
    mapping: ColumnMapping,
    row: Mapping[str, str],
    *,
    person: bool = True,
    dates: set[str] | frozenset[str] = frozenset({"occurred_at"}),
    zone: tzinfo | None = None,
    custom_as: str = "custom",
) -> dict[str, Any]:
    """A CSV row as a payload: nested ``consent``, ``custom`` (``data`` for events: ``custom_as``)
    and ``reached``; times in ``dates`` read with the mapping's formats, in ``zone`` unless they
    carry their own offset. For a ``person`` (a lead), a ``name`` column is split into first and
    last name. Values are kept as written (``unknown`` is a value); only blank cells and the
    mapping's ``missing`` values are missing."""
    from leadflow.imports.sales import moment

    missing = {"", *mapping.missing}
    out: dict[str, Any] = {}
    for target, column in mapping.columns.items():
        raw = (row.get(column) or "").strip()
        if raw in missing:
            continue
        value: Any = mapping.values.get(target, {}).get(raw, raw)
        if value is None:  # mapped to nothing: missing
            continue
        if target in mapping.numbers and isinstance(value, str):
            value = _number(value, target)
        elif target in dates:
            fmt = mapping.date_formats.get(target, mapping.date_format)
            value = moment(value, target, fmt, zone or UTC) if isinstance(value, str) else value
        _put(out, target, value, custom_as)
    for target, value in mapping.constants.items():
        if target in dates and isinstance(value, str):
            value = moment(value, target, mapping.date_formats.get(target, mapping.date_format), zone or UTC)
        _put(out, target, value, custom_as)
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
    return out


def _put(out: dict[str, Any], target: str, value: Any, custom_as: str) -> None:
    if "." in target:
        head, tail = target.split(".", 1)
        if head in ("custom", "data"):
            head = custom_as
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


def zone_of(mapping: ColumnMapping, default: str) -> tzinfo:
    """The time zone the file's dates are written in: the mapping's, else the workspace's."""
    return ZoneInfo(mapping.timezone or default)
