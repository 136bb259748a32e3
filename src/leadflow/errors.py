"""One error hierarchy for the whole product.

Domain code raises these; the API maps them to RFC 9457 problem responses in one handler and the
CLI prints the message and exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: which field, and what is wrong with it."""

    field: str
    message: str
    line: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class LeadflowError(Exception):
    """Base of every error leadflow raises on purpose."""

    message: str
    problems: list[Problem] = field(default_factory=list)
    status = 400
    title = "Bad request"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message]
        for p in self.problems:
            where = f"line {p.line}: " if p.line is not None else ""
            lines.append(f"  - {where}{p.field}: {p.message}")
        return "\n".join(lines)


class InvalidInput(LeadflowError):
    """Input that fails validation (HTTP 422)."""

    status = 422
    title = "Invalid input"


class ConfigError(InvalidInput):
    """The workspace file is not valid; each problem names the key and the line."""

    title = "Invalid workspace configuration"


class NotFound(LeadflowError):
    status = 404
    title = "Not found"


class Conflict(LeadflowError):
    status = 409
    title = "Conflict"


class PermissionDenied(LeadflowError):
    status = 403
    title = "Permission denied"


class Unauthenticated(LeadflowError):
    status = 401
    title = "Authentication required"
