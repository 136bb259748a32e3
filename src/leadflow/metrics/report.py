"""Reports of computed metrics: flat rows for tables and CSV, and a standalone HTML page with
Plotly charts. Rendering only: the numbers come from :mod:`leadflow.metrics.service`."""

from __future__ import annotations

import csv
import html
import io
from typing import Any

SCALARS = (
    "value",
    "numerator",
    "denominator",
    "ci_low",
    "ci_high",
    "median",
    "mean",
    "p90",
    "count",
    "pending",
    "cohort",
    "open",
    "spend",
    "leads",
    "new_customers",
    "revenue",
    "previous",
    "change",
    "unit",
    "won_without_amount",
    "reason",
    "note",
)
DURATION_FIELDS = ("value", "median", "mean", "p90")
NO_GROUP = "(none)"  # a lead without a value of the breakdown (no source, no owner, ...)
WHOLE = "overall"  # the row of a metric that is not broken down


def broken_down(result: dict[str, Any]) -> bool:
    """Are the rows groups of a breakdown (``by``, or one the metric makes by default, such as
    landing pages)? Then a row without a group is the leads without a value, not the whole."""
    return result.get("by") is not None or any(r.get("group") is not None for r in result["rows"])


def group_label(group: Any, grouped: bool) -> str | None:
    """How a group is shown: its value; ``(none)`` for the rows without one in a breakdown (never
    a word that reads as the overall figure); None for the whole when not broken down."""
    if group is not None:
        return str(group)
    return NO_GROUP if grouped else None


def header(result: dict[str, Any], column: str) -> str:
    """A column's heading, with the unit of durations (``median (hours)``)."""
    unit = result.get("duration_unit")
    return f"{column} ({unit})" if unit and column in DURATION_FIELDS else column


def left_out_text(result: dict[str, Any]) -> str | None:
    """What a metric counting only declared sources left out of this query, in a sentence."""
    left = result.get("left_out")
    if not left or not (left["undeclared_source"] or left["no_source"]):
        return None
    parts = []
    if left["undeclared_source"]:
        named = ", ".join(f"{s}: {n:,}" for s, n in left["undeclared_sources"].items())
        parts.append(f"with a source not declared in leadflow.yaml: {left['undeclared_source']:,} ({named})")
    if left["no_source"]:
        parts.append(f"without a source: {left['no_source']:,}")
    return f"left out — {left['what']} " + "; ".join(parts)


def flat_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (period, group, [stage]) with the metric's scalar fields; a missing group
    of a breakdown is ``(none)``."""
    grouped = broken_down(result)
    out = []
    for r in result["rows"]:
        row: dict[str, Any] = {
            "metric": result["id"],
            "period": r.get("period"),
            "group": group_label(r.get("group"), grouped),
        }
        if "stage" in r:
            row["stage"] = r["stage"]
        for key in SCALARS:
            if key in r and not isinstance(r[key], dict | list):
                row[key] = r[key]
        if isinstance(r.get("reached"), dict):
            row.update({f"reached_{k}": v for k, v in r["reached"].items()})
        if isinstance(r.get("sla_attainment"), dict):
            row["sla_attainment"] = r["sla_attainment"].get("value")
        out.append(row)
    return out


def to_csv(results: list[dict[str, Any]]) -> str:
    rows = [row for result in results for row in flat_rows(result)]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def figure(result: dict[str, Any]) -> Any:
    """A Plotly figure for one metric: bars per group (lines over periods when there are several)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    rows = result["rows"]
    grouped = broken_down(result)
    if result["id"] == "stage_reached":
        for r in rows:
            fig.add_trace(
                go.Funnel(
                    name=f"{r['period']} {group_label(r['group'], grouped) or ''}".strip(),
                    y=list(r["reached"]),
                    x=list(r["reached"].values()),
                )
            )
    else:
        periods = sorted({str(r.get("period")) for r in rows})
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            key = group_label(r.get("group"), grouped) or WHOLE
            if "stage" in r:
                key = f"{key} · {r['stage']}"
            groups.setdefault(key, []).append(r)
        for name, items in groups.items():
            items.sort(key=lambda r: str(r.get("period")))
            x = [str(r.get("period")) for r in items]
            y = [_number(r.get("value")) for r in items]
            if len(periods) > 1:
                fig.add_trace(go.Scatter(name=name, x=x, y=y, mode="lines+markers"))
            else:
                errors = None
                if all("ci_low" in r for r in items):
                    errors = {
                        "type": "data",
                        "symmetric": False,
                        "array": [(_number(r["ci_high"]) or 0) - (_number(r["value"]) or 0) for r in items],
                        "arrayminus": [(_number(r["value"]) or 0) - (_number(r["ci_low"]) or 0) for r in items],
                    }
                fig.add_trace(go.Bar(name=name, x=[name], y=y, error_y=errors))
    unit = result.get("duration_unit") or result.get("unit", "")
    fig.update_layout(
        title=f"{result['name']} ({result['from']} → {result['to']}, {result.get('basis', 'cohort')} basis)",
        yaxis_title=unit,
        template="plotly_white",
        height=420,
    )
    return fig


def to_html(results: list[dict[str, Any]], title: str = "leadflow report") -> str:
    """A standalone page (plotly.js inlined once, works offline): one chart and definition per metric."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "p.def{color:#555}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for i, result in enumerate(results):
        parts.append(f"<h2 id='{html.escape(result['id'])}'>{html.escape(result['name'])}</h2>")
        parts.append(
            f"<p class='def'>{html.escape(result['definition'])} — <em>{html.escape(result['formula'])}</em></p>"
        )
        for text in (result.get("note"), left_out_text(result)):
            if text:
                parts.append(f"<p class='def'>{html.escape(text)}</p>")
        parts.append(figure(result).to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts)
