"""``leadflow model ...``: train, list, show, evaluate, activate, rollback, backtest, threshold,
drift, predict. Thin: open the workspace, call the model service, print."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from leadflow.errors import InvalidInput, Problem

model_app = typer.Typer(help="The predictive conversion model.", no_args_is_help=True)
console = Console()

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace", "-w", help="Workspace directory (default: $LEADFLOW_WORKSPACE, else the current directory)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _open(workspace: Path | None) -> Any:
    from leadflow.workspace import Workspace

    return Workspace.open(workspace)


def _dump(value: Any) -> None:
    from leadflow.model.service import plain

    print(json.dumps(plain(value), indent=2, default=str, ensure_ascii=False))


def _figure(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def _metrics_table(metrics: dict[str, dict[str, Any]], title: str) -> Table:
    from leadflow.model.charts import LABELS

    table = Table(title=title)
    for col in ("scorer", "AUC", "log loss", "Brier", "leads"):
        table.add_column(col, justify="left" if col == "scorer" else "right")
    for name, m in metrics.items():
        table.add_row(LABELS.get(name, name), *(str(m.get(k)) for k in ("auc", "log_loss", "brier", "leads")))
    return table


def _print_report(report: dict[str, Any]) -> None:
    console.print(
        f"[green]model version {report['version']}[/green] — target {report['target']}: "
        f"{report['rows']:,} leads with known outcomes ({report['converted']:,} converted), "
        f"trained in {report['seconds']} s"
    )
    slices = report.get("slices") or {}
    if slices:
        console.print(
            "  conversion by slice (the drift): "
            + " · ".join(
                f"{name} {s['conversion_rate']:.1%} of {s['leads']:,}"
                for name, s in slices.items()
                if s.get("conversion_rate") is not None
            )
        )
    if report.get("chosen"):
        console.print(f"  shipped: [bold]{report['chosen']}[/bold] — {report['why']}")
    kept = [c for c in report.get("fields_checked", []) if not c["left_out"]]
    if kept:

        def power(c: dict[str, Any]) -> float:
            figures = [
                c["evidence"].get("auc"),
                c["evidence"].get("auc_filled"),
                *c["evidence"].get("auc_by_period", []),
            ]
            return max((a for a in figures if a is not None), default=0.0)

        strongest = sorted(kept, key=power, reverse=True)[:3]
        console.print(
            f"  leakage guard: {len(kept)} fields kept, the strongest on its own "
            + ", ".join(f"{c['feature']} (AUC {power(c):.2f})" for c in strongest)
            + " — every field's verdict is in --json (fields_checked)"
        )
    for flag in report.get("leakage", []):
        state = (
            "[yellow]kept (forced)[/yellow]" if flag["feature"] in report.get("forced", []) else "[red]left out[/red]"
        )
        console.print(f"  leakage guard: {flag['feature']} {state} — {flag['reason']}")
    console.print(_metrics_table(report["metrics"], f"held-out newest {report['split']['holdout']:,} leads"))
    interval = (report["metrics"].get("predictive") or {}).get("auc_interval")
    held = report.get("slices", {}).get("holdout", {})
    if interval and held.get("conversion_rate") is not None:
        converted = round(held["conversion_rate"] * held["leads"])
        note = f"  the held-out AUC is known to ±{(interval[1] - interval[0]) / 2:.3f} (95%) from {converted:,} conversions"
        console.print(note + (": differences smaller than that are noise" if converted < 30 else ""))
    ties = report.get("holdout_ties")
    if ties:
        console.print(f"  the most common score is shared by {ties['largest_share']:.1%} of the held-out leads")
    if report.get("challenge"):
        console.print(f"  {report['challenge']['why']}")


@model_app.command("train")
def train(
    workspace: WorkspaceOpt = None,
    target: Annotated[str | None, typer.Option(help="Funnel stage to predict (default: the workspace target).")] = None,
    holdout: Annotated[float, typer.Option(help="Share of the newest leads held out for the figures.")] = 0.25,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave a feature out (repeatable).")] = None,
    force: Annotated[
        list[str] | None, typer.Option("--force", help="Keep a feature the leakage guard flags (repeatable).")
    ] = None,
    window_days: Annotated[int, typer.Option(help="Days a lead gets to convert before it counts as lost.")] = 90,
    activate: Annotated[bool, typer.Option("--activate", help="Put the new version in force.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model version from the leads whose outcome is known (stored, not activated)."""
    from leadflow.model import registry, service

    ws = _open(workspace)
    options = service.TrainOptions(
        target=target,
        holdout=holdout,
        exclude=tuple(exclude or ()),
        force=tuple(force or ()),
        outcome_window_days=window_days,
    )
    with ws.reader() as conn:  # the trees grow on a snapshot, without the write lock
        candidate = service.fit_version(ws, conn, options, actor="cli")  # refuses too few outcomes, naming them
    with ws.transaction() as conn:
        report = service.save_version(conn, candidate)
        if activate:
            registry.activate(ws, conn, report["version"], actor="cli", reason="activated when trained")
    if as_json:
        _dump({k: v for k, v in report.items() if k != "evaluation"})
    else:
        _print_report(report)
        if activate:
            console.print(f"  [green]version {report['version']} is now active[/green]")
    ws.close()


@model_app.command("list")
def list_versions(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Model versions, newest first, with their window and headline figures."""
    from leadflow.model import registry

    ws = _open(workspace)
    with ws.reader() as conn:
        rows = registry.versions(conn)
    ws.close()
    if as_json:
        _dump([{k: v for k, v in r.items() if k != "report"} | {"metrics": r["report"].get("metrics")} for r in rows])
        return
    # Fits 80 columns: light borders, dates without the time, long names cut with an ellipsis.
    table = Table(title="model versions", caption="● active", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, width=1)
    table.add_column("target", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("created", no_wrap=True)
    table.add_column("by", no_wrap=True, overflow="ellipsis", max_width=12)
    for col in ("leads", "feat.", "AUC", "Brier"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        m = (r["report"].get("metrics") or {}).get("predictive", {})
        table.add_row(
            str(r["id"]),
            "●" if r["active"] else "",
            r["target"],
            r["created_at"].strftime("%Y-%m-%d"),
            r["created_by"],
            f"{r['rows']:,}",
            str(len(r["features"])),
            _figure(m.get("auc")),
            _figure(m.get("brier")),
        )
    console.print(table)


@model_app.command("show")
def show(version: Annotated[int, typer.Argument(help="Version id.")], workspace: WorkspaceOpt = None) -> None:
    """A version's full training report (JSON)."""
    from leadflow.model import registry

    ws = _open(workspace)
    with ws.reader() as conn:
        row = registry.get(conn, version)
    ws.close()
    _dump({k: v for k, v in row.items()})


@model_app.command("evaluate")
def evaluate(
    workspace: WorkspaceOpt = None,
    version: Annotated[int | None, typer.Option(help="Version (default: the active one, else the newest).")] = None,
    chart: Annotated[Path | None, typer.Option(help="Write the charts to this .png or .html file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The model against the rule model, naive Bayes and logistic regression on the newest leads:
    AUC, log loss, Brier, calibration, gains and lift by decile, conversion per score band."""
    from leadflow.model import charts, service

    ws = _open(workspace)
    with ws.reader() as conn:
        result = service.evaluate(ws, conn, version)
    ws.close()
    if chart is not None:
        if chart.suffix.lower() not in (".png", ".html", ".htm"):
            raise InvalidInput("unknown chart format", [Problem("--chart", "name a .png or .html file")])
        charts.write(result["evaluation"], chart, f"model version {result['version']}")
    if as_json:
        _dump(result)
        return
    console.print(
        _metrics_table(result["metrics"], f"version {result['version']} on {result['holdout']:,} recent leads")
    )
    table = Table(title="gains by decile (predictive model)")
    for col in ("decile", "leads", "converted", "rate", "lift", "captured"):
        table.add_column(col, justify="right")
    for d in result["evaluation"]["predictive"]["deciles"]:
        table.add_row(*(str(d[k]) for k in ("decile", "leads", "converted", "rate", "lift", "captured")))
    console.print(table)
    if chart is not None:
        console.print(f"charts: {chart}")


@model_app.command("activate")
def activate(
    version: Annotated[int, typer.Argument(help="Version id.")],
    workspace: WorkspaceOpt = None,
    reason: Annotated[str, typer.Option(help="Why (kept with the activation).")] = "activated from the CLI",
) -> None:
    """Put a model version in force: new score events carry its prediction."""
    from leadflow.model import registry

    ws = _open(workspace)
    with ws.transaction() as conn:
        done = registry.activate(ws, conn, version, actor="cli", reason=reason)
    ws.close()
    console.print(f"[green]version {done['active']} is active[/green] (was {done['previous'] or 'none'})")


@model_app.command("rollback")
def rollback(
    workspace: WorkspaceOpt = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the rollback).")] = None,
) -> None:
    """Go back to the version in force before the current one (repeat to step further back)."""
    from leadflow.model import registry

    ws = _open(workspace)
    with ws.transaction() as conn:
        done = registry.rollback(ws, conn, actor="cli", reason=reason)
    ws.close()
    console.print(
        f"[green]rolled back[/green]: active {done['active'] or 'none (rules only)'} (was {done['previous']})"
    )


@model_app.command("backtest")
def backtest(
    config: Annotated[Path, typer.Option("--config", help="The proposed leadflow.yaml.")],
    workspace: WorkspaceOpt = None,
    since: Annotated[str | None, typer.Option(help="Replay leads created from this date (YYYY-MM-DD).")] = None,
    target: Annotated[
        str | None, typer.Option(help="The stage that counts as converted (default: the target).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay history under a proposed configuration and the current one: MQL volume,
    conversions captured and load per owner."""
    from leadflow.model.backtest import backtest as run

    if not config.is_file():
        raise InvalidInput("no such file", [Problem("--config", f"{config} does not exist")])
    start = None
    if since is not None:
        try:
            start = (
                datetime.fromisoformat(since).astimezone()
                if "T" in since
                else datetime.fromisoformat(since + "T00:00:00+00:00")
            )
        except ValueError:
            raise typer.BadParameter(f"{since!r} is not a date; write YYYY-MM-DD", param_hint="--since") from None
    ws = _open(workspace)
    result = run(ws, config.read_text(encoding="utf-8"), since=start, target=target)
    ws.close()
    if as_json:
        _dump(result)
        return
    console.print(
        f"replayed {result['leads']:,} leads and {result['activities']:,} activities ({result['from']} → {result['to']})"
    )
    table = Table(title="current vs proposed")
    table.add_column("")
    table.add_column("current", justify="right")
    table.add_column("proposed", justify="right")
    for key in (
        "mql_threshold",
        "mql",
        "mql_per_week",
        "converted",
        "conversions_captured",
        "capture_rate",
        "mql_conversion_rate",
        "unassigned_mql",
    ):
        table.add_row(key, str(result["current"][key]), str(result["proposed"][key]))
    owners = sorted(set(result["current"]["mql_per_owner"]) | set(result["proposed"]["mql_per_owner"]))
    for owner in owners:
        table.add_row(
            f"MQLs for {owner}",
            str(result["current"]["mql_per_owner"].get(owner, 0)),
            str(result["proposed"]["mql_per_owner"].get(owner, 0)),
        )
    console.print(table)


def _end_of_day(value: str, name: str) -> datetime:
    """A date names the end of that day in UTC; a full ISO timestamp is taken as it is."""
    from datetime import UTC, time

    try:
        if "T" in value:
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return datetime.combine(datetime.fromisoformat(value).date(), time.max, tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD", param_hint=name) from None


@model_app.command("threshold")
def threshold(
    capacity: Annotated[float, typer.Option(help="Leads per week the team can work.")],
    workspace: WorkspaceOpt = None,
    weeks: Annotated[int, typer.Option(help="Recent weeks of inflow to judge by.")] = 8,
    using: Annotated[str, typer.Option(help="auto, model or rules.")] = "auto",
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Advise as of the end of this day (YYYY-MM-DD), e.g. on imported history (default: now)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The MQL threshold that catches the most conversions within the team's capacity."""
    from leadflow.model.thresholds import advise

    moment = _end_of_day(as_of, "--as-of") if as_of is not None else None
    ws = _open(workspace)
    with ws.reader() as conn:
        result = advise(ws, conn, capacity, weeks=weeks, using=using, as_of=moment)
    ws.close()
    if as_json:
        _dump(result)
        return
    if result["note"]:
        console.print(f"[yellow]{result['note']}[/yellow]")
    a = result["advised"]
    console.print(
        f"inflow {result['inflow_per_week']} leads/week, capacity {capacity:g}: set the MQL threshold to "
        f"[bold]{a['threshold']}[/bold] on the {result['score']} score → {a['mql_per_week']} MQLs/week, "
        f"{(a['conversions_captured'] or 0):.0%} of conversions (now {result['current_mql_threshold']})"
    )
    table = Table()
    for col in ("threshold", "MQL/week", "conversions captured", "MQL conversion"):
        table.add_column(col, justify="right")
    for row in result["table"]:
        table.add_row(
            *(str(row[k]) for k in ("threshold", "mql_per_week", "conversions_captured", "mql_conversion_rate"))
        )
    console.print(table)


@model_app.command("drift")
def drift(
    workspace: WorkspaceOpt = None,
    version: Annotated[int | None, typer.Option(help="Only this version's scores.")] = None,
    period: Annotated[str, typer.Option(help="week or month.")] = "month",
    as_json: JsonOpt = False,
) -> None:
    """Predicted score distribution and calibration (predicted vs observed) per period."""
    from leadflow.model.service import drift as run

    ws = _open(workspace)
    with ws.reader() as conn:
        result = run(ws, conn, version_id=version, period=period)
    ws.close()
    if as_json:
        _dump(result)
        return
    table = Table(title=f"drift by {period}")
    for col in ("period", "scored", "mean", "p10", "p50", "p90", "known", "predicted", "observed"):
        table.add_column(col, justify="right")
    for p in result["periods"]:
        table.add_row(
            *(
                str(p[k])
                for k in (
                    "period",
                    "scored",
                    "mean_score",
                    "p10",
                    "p50",
                    "p90",
                    "known_outcomes",
                    "predicted_rate",
                    "observed_rate",
                )
            )
        )
    console.print(table)


@model_app.command("predict")
def predict(
    lead: Annotated[int, typer.Argument(help="Lead id.")],
    workspace: WorkspaceOpt = None,
    version: Annotated[int | None, typer.Option(help="Version (default: the active one).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A lead's predicted score now, with every feature's contribution."""
    from leadflow.model.scoring import predict_lead

    ws = _open(workspace)
    with ws.reader() as conn:
        result = predict_lead(ws, conn, lead, version_id=version)
    ws.close()
    if as_json:
        _dump(result)
        return
    console.print(
        f"lead {lead}: score [bold]{result['score']}[/bold] (p={result['probability']:.3f}, version {result['version']})"
    )
    table = Table()
    for col in ("feature", "value", "contribution (log-odds)"):
        table.add_column(col)
    table.add_row("(base value: the average lead)", "", f"{result['base_value']:+.3f}")
    for c in result["contributions"]:
        table.add_row(c["feature"], "" if c["value"] is None else str(c["value"]), f"{c['contribution']:+.3f}")
    table.add_row("[bold]margin (the sum)[/bold]", "", f"[bold]{result['margin']:+.3f}[/bold]")
    console.print(table)
    how = (result.get("calibration") or {}).get("how")
    if how:
        console.print(f"calibration: {how}; score = {result['probability']:.3f} × 100 ≈ {result['score']}")
