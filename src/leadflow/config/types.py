"""The small types every section of the workspace file uses."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from leadflow.config.durations import format_duration, parse_duration

_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{value!r} is not a valid id: use lower-case letters, digits, '_' or '-' (max 63), "
            "starting with a letter or digit"
        )
    return value


Id = Annotated[str, AfterValidator(_check_id)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
