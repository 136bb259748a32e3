"""Turn whatever arrived (a dict, JSON, a form, a CSV row) into a clean :class:`Capture`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from leadflow.capture.normalize import Capture, normalise
from leadflow.capture.rules import CaptureRules
from leadflow.capture.schemas import LeadIn
from leadflow.errors import InvalidInput, Problem


def problems_from_validation(exc: ValidationError, *, prefix: str = "") -> list[Problem]:
    """Pydantic errors as problems naming the field (``consent.email``, ``custom.plan``)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or "(body)"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        out.append(Problem(prefix + field, message))
    return out


def parse_lead(payload: LeadIn | Mapping[str, Any]) -> LeadIn:
    if isinstance(payload, LeadIn):
        return payload
    try:
        return LeadIn.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput("the lead is not valid", problems_from_validation(exc)) from None


def prepare(
    payload: LeadIn | Mapping[str, Any], *, default_region: str, now: datetime, rules: CaptureRules | None = None
) -> Capture:
    """Validate and normalise one submission; raises :class:`InvalidInput` naming each bad field
    (with ``rules``: also every field its capture context requires but lacks)."""
    return normalise(parse_lead(payload), default_region=default_region, now=now, rules=rules)
