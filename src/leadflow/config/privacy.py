"""What the workspace says about personal data: which custom fields are not personal, and what a
capture with the email or phone of an erased person does.

``custom.*`` fields hold whatever a form asked for (a street address, a birthday), so erasure
treats each of them as personal unless the workspace file says otherwise.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from leadflow.config.types import Strict

_CUSTOM = re.compile(r"custom\.[a-z][a-z0-9_]{0,62}")


def _check_field_name(value: str) -> str:
    if not _CUSTOM.fullmatch(value):
        if value.startswith("custom."):
            raise ValueError(
                f"{value!r} is not a custom field name: custom.<name>, the name in lower case letters, digits "
                "and '_', starting with a letter (e.g. custom.industry_code)"
            )
        raise ValueError(
            f"{value!r} cannot be declared here: only custom.<name> fields are declared (whether a built-in "
            "field is personal is fixed: email, names, phone, notes and external_id are)"
        )
    return value


CustomFieldName = Annotated[str, AfterValidator(_check_field_name)]


class FieldSpec(Strict):
    """One custom field: ``personal: false`` keeps its value when a person is erased."""

    personal: bool = Field(default=True, description="erased with the person (every custom field is, by default)")


class PrivacySection(Strict):
    after_erasure: Literal["refuse", "fresh_consent"] = Field(
        default="refuse",
        description=(
            "a capture with the email or phone of an erased person: refuse it (409), or take it as a new lead "
            "when it carries fresh consent"
        ),
    )


FieldsSection = dict[CustomFieldName, FieldSpec]


def non_personal_custom(fields: FieldsSection) -> frozenset[str]:
    """The custom field names (without ``custom.``) the workspace declares not personal."""
    return frozenset(name.removeprefix("custom.") for name, spec in fields.items() if not spec.personal)
