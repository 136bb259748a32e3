"""Column types that hold their promises on SQLite and PostgreSQL alike:
times are aware UTC, money is Decimal, ids are 64-bit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

CENT = Decimal("0.01")

# INTEGER PRIMARY KEY is SQLite's rowid (autoincrementing); BIGINT everywhere else.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


# The texts of the moments bound lately, by object identity, shared by every time column: a
# capture binds the same two or three moments a dozen times (the lead's times, its events' times).
# Each entry keeps its datetime alive, so an identity cannot be reused while it is kept.
_RECENT: dict[int, tuple[datetime, str]] = {}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out; a naive datetime is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: leadflow stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite, times are stored as fixed-width ISO text ('2026-03-01 09:30:00.000000', the same
    # format SQLAlchemy's DATETIME uses), so they sort as text and SQLite's date functions read
    # them. These processors do it with the C-implemented isoformat/fromisoformat: the hot path
    # binds a dozen times per lead.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            known = _RECENT.get(id(value))
            if known is not None and known[0] is value:
                return known[1]
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: leadflow stores aware UTC times only")
            text = (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat(" ", "microseconds")[:26]
            if len(_RECENT) >= 256:
                _RECENT.clear()
            _RECENT[id(value)] = (value, text)
            return text

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | datetime | None) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, str):
                return datetime.fromisoformat(value).replace(tzinfo=UTC) if len(value) > 19 else _from_short(value)
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

        return process


def _from_short(value: str) -> datetime:
    """Times written by SQL itself (e.g. CURRENT_TIMESTAMP) have no fraction, or only a date."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class Money(TypeDecorator[Decimal]):
    """NUMERIC(16, 2) on PostgreSQL; on SQLite a NUMERIC column read back as exact cents."""

    impl = Numeric(16, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(16, 2, asdecimal=False))
        return dialect.type_descriptor(Numeric(16, 2))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value).quantize(CENT)
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(CENT)
