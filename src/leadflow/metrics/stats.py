"""Intervals and tests for rates: Wilson score intervals, and whether two sources really differ
(two-proportion z-test, and Fisher's exact test for small counts)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of successes/n (n > 0)."""
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of H0: p1 == p2, pooled standard error."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, min(1.0, 2 * _normal_sf(abs(z)))


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test on [[a, b], [c, d]] (sum of tables no more likely)."""
    row1, col1, n = a + b, a + c, a + b + c + d
    lo, hi = max(0, col1 - (n - row1)), min(row1, col1)

    def logp(x: int) -> float:
        return (
            math.lgamma(row1 + 1)
            - math.lgamma(x + 1)
            - math.lgamma(row1 - x + 1)
            + math.lgamma(n - row1 + 1)
            - math.lgamma(col1 - x + 1)
            - math.lgamma(n - row1 - col1 + x + 1)
            - (math.lgamma(n + 1) - math.lgamma(col1 + 1) - math.lgamma(n - col1 + 1))
        )

    observed = logp(a)
    total = sum(math.exp(logp(x)) for x in range(lo, hi + 1) if logp(x) <= observed + 1e-7)
    return min(1.0, total)


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    a_rate: float | None
    b_rate: float | None
    a_n: int
    b_n: int
    difference: float | None
    difference_ci: tuple[float, float] | None
    z: float | None
    p_value: float | None
    fisher_p_value: float | None
    test: str
    significant: bool
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_rates(a: str, x1: int, n1: int, b: str, x2: int, n2: int, alpha: float = 0.05) -> Comparison:
    """Is a's rate really different from b's? Fisher's exact p decides when any expected cell is
    under 5 (the z-test's normal approximation is poor there), else the z-test's."""
    if n1 == 0 or n2 == 0:
        return Comparison(
            a,
            b,
            x1 / n1 if n1 else None,
            x2 / n2 if n2 else None,
            n1,
            n2,
            None,
            None,
            None,
            None,
            None,
            "none",
            False,
            "not enough data: one side has no population",
        )
    p1, p2 = x1 / n1, x2 / n2
    z, p = two_proportion_z(x1, n1, x2, n2)
    fisher = fisher_exact(x1, n1 - x1, x2, n2 - x2)
    pooled = (x1 + x2) / (n1 + n2)
    small = min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled)) < 5
    chosen = fisher if small else p
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    diff = p1 - p2
    significant = chosen < alpha
    if significant:
        better = a if diff > 0 else b
        verdict = f"{better} converts better; the difference is significant (p = {chosen:.3g} < {alpha})"
    else:
        verdict = f"no significant difference (p = {chosen:.3g} ≥ {alpha}); the gap may be chance"
    return Comparison(
        a,
        b,
        p1,
        p2,
        n1,
        n2,
        diff,
        (diff - Z95 * se, diff + Z95 * se),
        z,
        p,
        fisher,
        "fisher" if small else "z",
        significant,
        verdict,
    )
