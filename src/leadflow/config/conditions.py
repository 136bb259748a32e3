"""Conditions in the workspace file, and their compilation to fast predicates.

A condition is data::

    {field: score, gte: 60}
    {field: title, matches: "(?i)director|vp"}
    {all: [{field: country, in: [DE, AT, CH]}, {not: {field: is_free_mail, eq: true}}]}

It is validated when the file loads and compiled once per configuration version into a plain
function of a snapshot (a dict), so evaluating rules on the hot path costs a few attribute reads.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "matches",
    "starts_with",
    "ends_with",
    "exists",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldCondition(_Strict):
    field: str
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gt: int | float | None = None
    gte: int | float | None = None
    lt: int | float | None = None
    lte: int | float | None = None
    contains: str | None = None
    matches: str | None = None
    starts_with: str | None = None
    ends_with: str | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> FieldCondition:
        given = [name for name in self.model_fields_set if name != "field"]
        if len(given) != 1:
            names = ", ".join(OPERATORS)
            found = ", ".join(sorted(_alias(g) for g in given)) or "none"
            raise ValueError(f"a condition needs exactly one operator ({names}); found {found}")
        return self

    @field_validator("matches")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @property
    def operator(self) -> str:
        (name,) = [n for n in self.model_fields_set if n != "field"]
        return _alias(name)

    @property
    def operand(self) -> Any:
        (name,) = [n for n in self.model_fields_set if n != "field"]
        return getattr(self, name)


def _alias(name: str) -> str:
    return "in" if name == "in_" else name


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Strict):
    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, Mapping):
        for key in ("all", "any", "not"):
            if key in value:
                return {"all": "AllOf", "any": "AnyOf", "not": "NotOf"}[key]
        return "FieldCondition"
    return None


Condition = Annotated[
    Annotated[FieldCondition, Tag("FieldCondition")]
    | Annotated[AllOf, Tag("AllOf")]
    | Annotated[AnyOf, Tag("AnyOf")]
    | Annotated[NotOf, Tag("NotOf")],
    Discriminator(
        _condition_kind,
        custom_error_type="invalid_condition",
        custom_error_message="a condition is a mapping: {field: NAME, OPERATOR: VALUE}, {all: [...]}, {any: [...]} or {not: ...}",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


def condition_fields(cond: Any) -> list[str]:
    """Every field a condition reads, for validation against the known lead fields."""
    if isinstance(cond, FieldCondition):
        return [cond.field]
    if isinstance(cond, AllOf):
        return [f for c in cond.all for f in condition_fields(c)]
    if isinstance(cond, AnyOf):
        return [f for c in cond.any for f in condition_fields(c)]
    if isinstance(cond, NotOf):
        return condition_fields(cond.not_)
    return []


Predicate = Callable[[Mapping[str, Any]], bool]


def field_getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """Reads ``name`` from a snapshot; ``custom.x`` and ``event.x`` read nested mappings,
    ``criteria.x`` the level of criterion x and ``engagement.r`` the points scoring rule r gives now."""
    if name.startswith("criteria."):
        criterion = name.split(".", 1)[1]

        def level(snapshot: Mapping[str, Any]) -> Any:
            criteria = snapshot.get("criteria")
            found = criteria.get(criterion) if isinstance(criteria, Mapping) else None
            return found.get("level") if isinstance(found, Mapping) else found

        return level
    if name.startswith("engagement."):
        rule = name.split(".", 1)[1]

        def engagement(snapshot: Mapping[str, Any]) -> Any:
            detail = snapshot.get("score_detail") or {}
            return (detail.get("engagement") or {}).get(rule, 0) + (detail.get("lead_engagement") or {}).get(rule, 0)

        return engagement
    if "." in name:
        head, tail = name.split(".", 1)

        def nested(snapshot: Mapping[str, Any]) -> Any:
            inner = snapshot.get(head)
            return inner.get(tail) if isinstance(inner, Mapping) else None

        return nested
    return operator.methodcaller("get", name)  # a top-level field: read in C, no Python frame


def _level_names(arg: Any) -> Any:
    """Criterion levels are words; YAML turns yes/no into booleans, so turn them back."""

    def one(v: Any) -> Any:
        return ("yes" if v else "no") if isinstance(v, bool) else v

    return [one(v) for v in arg] if isinstance(arg, list) else one(arg)


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def compile_condition(cond: Any) -> Predicate:
    """Turn a validated condition into a predicate over a snapshot dict. Text compares ignore case."""
    if cond is None:
        return lambda _snapshot: True
    if isinstance(cond, AllOf):
        parts = tuple(compile_condition(c) for c in cond.all)

        def all_of(s: Mapping[str, Any]) -> bool:
            for p in parts:  # noqa: SIM110 - a loop, not all(<generator>): runs per lead
                if not p(s):
                    return False
            return True

        return all_of
    if isinstance(cond, AnyOf):
        parts = tuple(compile_condition(c) for c in cond.any)

        def any_of(s: Mapping[str, Any]) -> bool:
            for p in parts:  # noqa: SIM110 - a loop, not all(<generator>): runs per lead
                if p(s):
                    return True
            return False

        return any_of
    if isinstance(cond, NotOf):
        inner = compile_condition(cond.not_)
        return lambda s: not inner(s)
    assert isinstance(cond, FieldCondition)
    get = field_getter(cond.field)
    op, arg = cond.operator, cond.operand
    if cond.field.startswith("criteria."):
        arg = _level_names(arg)
    # Rules are evaluated for every lead captured (~80 tests a lead): each test below is one
    # Python function, the text normalised inline rather than through a helper call.
    if op == "exists":
        return (lambda s: get(s) not in (None, "")) if arg else (lambda s: get(s) in (None, ""))
    if op in ("eq", "ne"):
        want = _norm(arg)

        def eq(s: Mapping[str, Any]) -> bool:
            v = get(s)
            return (v.lower() if isinstance(v, str) else v) == want

        def ne(s: Mapping[str, Any]) -> bool:
            v = get(s)
            return (v.lower() if isinstance(v, str) else v) != want

        return eq if op == "eq" else ne
    if op in ("in", "not_in"):
        wanted = frozenset(_norm(a) for a in arg)

        def in_(s: Mapping[str, Any]) -> bool:
            v = get(s)
            return (v.lower() if isinstance(v, str) else v) in wanted

        def not_in(s: Mapping[str, Any]) -> bool:
            v = get(s)
            return (v.lower() if isinstance(v, str) else v) not in wanted

        return in_ if op == "in" else not_in
    if op in ("gt", "gte", "lt", "lte"):
        cmp = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op]

        def compare(s: Mapping[str, Any]) -> bool:
            value = get(s)
            if value is None or isinstance(value, bool):
                return False
            try:
                return cmp(float(value), arg)
            except (TypeError, ValueError):
                return False

        return compare
    if op == "matches":
        pattern = re.compile(arg)
        return lambda s: isinstance(v := get(s), str) and pattern.search(v) is not None
    text = arg.lower()
    if op == "contains":
        return lambda s: isinstance(v := get(s), str) and text in v.lower()
    if op == "starts_with":
        return lambda s: isinstance(v := get(s), str) and v.lower().startswith(text)
    if op == "ends_with":
        return lambda s: isinstance(v := get(s), str) and v.lower().endswith(text)
    raise ValueError(f"unknown operator {op}")  # unreachable: the model admits only OPERATORS


def describe(cond: Any) -> str:
    """A short human reading of a condition, for traces and the dashboard."""
    if cond is None:
        return "always"
    if isinstance(cond, AllOf):
        return " and ".join(f"({describe(c)})" for c in cond.all)
    if isinstance(cond, AnyOf):
        return " or ".join(f"({describe(c)})" for c in cond.any)
    if isinstance(cond, NotOf):
        return f"not ({describe(cond.not_)})"
    return f"{cond.field} {cond.operator} {cond.operand!r}"
