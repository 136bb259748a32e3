"""The ``identity`` section of the workspace file: how leads are matched, merged and linked.

Matching is Fellegi-Sunter, as in Splink: each comparison sorts a pair of leads into a level
(exact, fuzzy, else, ...) and each level carries an m probability (how often true matches land
there) and a u probability (how often non-matches do). The weights log2(m/u) add up with the
prior into a match probability, which two thresholds turn into a decision.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Comparator = Literal["email", "phone", "name", "company", "domain", "exact", "similarity", "numeric", "date"]

# The levels each comparator sorts a pair into, best first ("else": both present, no agreement).
LEVELS: dict[str, tuple[str, ...]] = {
    "email": ("exact", "fuzzy", "local", "else"),
    "phone": ("exact", "else"),
    "name": ("exact", "nickname", "swapped", "fuzzy", "initial", "else"),
    "company": ("exact", "fuzzy", "else"),
    "domain": ("exact", "else"),
    "exact": ("exact", "else"),
    "similarity": ("exact", "fuzzy", "else"),
    "numeric": ("exact", "close", "else"),
    "date": ("exact", "close", "else"),
}

# m and u per level: m estimated on the simulator's labelled set (``leadflow.identity.estimate``),
# u from random pairs, floored where a random pair should (almost) never agree.
DEFAULT_M: dict[str, dict[str, float]] = {
    "email": {"exact": 0.85, "fuzzy": 0.07, "local": 0.06, "else": 0.02},
    "phone": {"exact": 0.9, "else": 0.1},
    "name": {"exact": 0.46, "nickname": 0.10, "swapped": 0.28, "fuzzy": 0.09, "initial": 0.03, "else": 0.04},
    "company": {"exact": 0.95, "fuzzy": 0.035, "else": 0.015},
    "domain": {"exact": 0.95, "else": 0.05},
    "exact": {"exact": 0.9, "else": 0.1},
    "similarity": {"exact": 0.7, "fuzzy": 0.2, "else": 0.1},
    "numeric": {"exact": 0.7, "close": 0.2, "else": 0.1},
    "date": {"exact": 0.8, "close": 0.1, "else": 0.1},
}
DEFAULT_U: dict[str, dict[str, float]] = {
    "email": {"exact": 1e-7, "fuzzy": 2e-6, "local": 5e-6, "else": 1.0},
    "phone": {"exact": 1e-7, "else": 1.0},
    "name": {"exact": 1e-5, "nickname": 2e-6, "swapped": 2e-6, "fuzzy": 5e-6, "initial": 7e-5, "else": 1.0},
    "company": {"exact": 1.5e-4, "fuzzy": 1.5e-4, "else": 1.0},
    "domain": {"exact": 1.2e-4, "else": 1.0},
    "exact": {"exact": 0.01, "else": 0.99},
    "similarity": {"exact": 0.01, "fuzzy": 0.02, "else": 0.97},
    "numeric": {"exact": 0.01, "close": 0.05, "else": 0.94},
    "date": {"exact": 0.001, "close": 0.01, "else": 0.989},
}

_BUILT_IN_FIELDS = {"email": "email", "phone": "phone", "name": "name", "company": "company", "domain": "domain"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Comparison(_Strict):
    """One field compared between two leads, and what each level of agreement weighs."""

    field: str = Field(
        min_length=1,
        description="email | phone | name | company | domain | a lead column | custom.<name>",
        pattern=r"^(custom\.)?[a-z][a-z0-9_]{0,62}$",
    )
    comparator: Comparator | None = Field(default=None, description="default: the field's own (email, phone, ...)")
    threshold: float = Field(default=0.92, gt=0, le=1, description="Jaro-Winkler similarity that counts as fuzzy")
    tolerance: float = Field(default=0, ge=0, description="numeric: largest difference; date: days apart")
    m: dict[str, float] = Field(default_factory=dict, description="level → m probability (default: built in)")
    u: dict[str, float] = Field(default_factory=dict, description="level → u probability (default: built in)")

    @model_validator(mode="after")
    def _check(self) -> Comparison:
        if self.comparator is None:
            if self.field not in _BUILT_IN_FIELDS:
                raise ValueError(
                    f"field {self.field!r} needs a comparator: exact, similarity, numeric or date "
                    "(email, phone, name, company and domain have their own)"
                )
            object.__setattr__(self, "comparator", _BUILT_IN_FIELDS[self.field])
        levels = LEVELS[self.kind]
        for name, table in (("m", self.m), ("u", self.u)):
            for level, value in table.items():
                if level not in levels:
                    raise ValueError(f"{name}: {self.kind} has no level {level!r}; its levels are {', '.join(levels)}")
                if not 0 < value <= 1:
                    raise ValueError(f"{name}.{level} must be a probability in (0, 1], not {value}")
        return self

    @property
    def kind(self) -> str:
        assert self.comparator is not None
        return self.comparator

    def weights(self) -> dict[str, tuple[float, float]]:
        """level → (m, u): configured values over the built-in ones."""
        m = {**DEFAULT_M[self.kind], **self.m}
        u = {**DEFAULT_U[self.kind], **self.u}
        return {level: (m[level], u[level]) for level in LEVELS[self.kind]}


def _default_comparisons() -> list[Comparison]:
    # domain is left out by default: it agrees whenever the company does, and Fellegi-Sunter
    # would count that one piece of evidence twice
    return [Comparison(field=f) for f in ("email", "phone", "name", "company")]


class MatchSettings(_Strict):
    enabled: bool = True
    prior: float = Field(
        default=1e-6, gt=0, lt=1, description="the chance that two leads picked at random are the same person"
    )
    auto_merge_above: float = Field(default=0.99, gt=0, le=1, description="merge automatically at this probability")
    review_above: float = Field(default=0.80, gt=0, le=1, description="queue for review at this probability")
    email_provider_rules: bool = Field(default=True, description="Gmail ignores dots and +tags, and so on")
    comparisons: list[Comparison] = Field(default_factory=_default_comparisons, min_length=1)
    max_candidates: int = Field(default=50, ge=1, le=1000, description="candidates compared per incoming lead")
    max_block_size: int = Field(default=200, ge=2, description="batch: blocking keys shared by more leads are skipped")

    @model_validator(mode="after")
    def _thresholds(self) -> MatchSettings:
        if self.review_above > self.auto_merge_above:
            raise ValueError("review_above must not be above auto_merge_above")
        seen = set()
        for c in self.comparisons:
            if c.field in seen:
                raise ValueError(f"field {c.field!r} is compared twice")
            seen.add(c.field)
        return self


Rule = Literal["most_recent", "oldest", "most_trusted_source", "longest", "survivor"]


class Survivorship(_Strict):
    """Which value a merged lead keeps, per field."""

    default: Rule = "most_recent"
    fields: dict[str, Rule] = Field(default_factory=dict, description="field → rule, e.g. {company: longest}")
    source_trust: list[str] = Field(default_factory=list, description="sources, most trusted first")


class AccountMatching(_Strict):
    company_name: bool = Field(
        default=True, description="link leads without a company domain to the account of the same company name"
    )


class IdentitySection(_Strict):
    match: MatchSettings = Field(default_factory=MatchSettings)
    survivorship: Survivorship = Field(default_factory=Survivorship)
    accounts: AccountMatching = Field(default_factory=AccountMatching)
