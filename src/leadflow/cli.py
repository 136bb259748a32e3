"""The ``leadflow`` command. Thin: it parses, opens the unit of work, calls the domain, prints."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.errors import LeadflowError

app = typer.Typer(
    help="leadflow: capture, recognise, qualify, score and route every lead; measure what works.", no_args_is_help=True
)
leads_app = typer.Typer(help="Capture and inspect leads.", no_args_is_help=True)
config_app = typer.Typer(help="The workspace file.", no_args_is_help=True)
review_app = typer.Typer(help="The quality review queue.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)
app.add_typer(leads_app, name="leads")
app.add_typer(config_app, name="config")
app.add_typer(review_app, name="review")
app.add_typer(apikey_app, name="apikey")
owners_app = typer.Typer(help="Owners and teams that leads are routed to.", no_args_is_help=True)
handoff_app = typer.Typer(help="The handoff from marketing to sales.", no_args_is_help=True)
app.add_typer(owners_app, name="owners")
app.add_typer(handoff_app, name="handoff")
nurture_app = typer.Typer(help="Nurture sequences for leads that are not ready yet.", no_args_is_help=True)
app.add_typer(nurture_app, name="nurture")
privacy_app = typer.Typer(help="A person's data on request: export and erase.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")
user_app = typer.Typer(help="People who sign in to the dashboard.", no_args_is_help=True)
app.add_typer(user_app, name="user")
from leadflow.imports.cli import import_csv  # noqa: E402
from leadflow.model.cli import model_app  # noqa: E402
from leadflow.webhooks.cli import webhooks_app  # noqa: E402

app.add_typer(model_app, name="model")
app.add_typer(webhooks_app, name="webhooks")
app.command("import")(import_csv)

console = Console()
err = Console(stderr=True)

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
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _parse_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD", param_hint=name) from None


# -- workspace -----------------------------------------------------------------------------------


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Directory to create the workspace in.")]) -> None:
    """Create a workspace: a commented starter leadflow.yaml and an empty database."""
    from leadflow.workspace import Workspace

    ws = Workspace.init(directory)
    console.print(f"[green]Workspace ready[/green] in {ws.path}")
    console.print(f"  configuration: {ws.path / 'leadflow.yaml'} (version {ws.version})")
    console.print(f"  database:      {ws.engine.url.render_as_string(hide_password=True)}")
    ws.close()


@config_app.command("check")
def config_check(workspace: WorkspaceOpt = None) -> None:
    """Validate the workspace file and say exactly what is wrong, with line numbers."""
    from leadflow.config.loader import load_config_file
    from leadflow.workspace import resolve_path

    loaded = load_config_file(resolve_path(workspace) / "leadflow.yaml")
    c = loaded.config
    console.print(
        f"[green]valid[/green] — version {loaded.version}: {len(c.owners)} owners, {len(c.teams)} teams, "
        f"{len(c.scoring.rules)} scoring rules, {len(c.routing.rules)} routing rules, {len(c.sources)} sources"
    )


# -- simulate, demo, serve -----------------------------------------------------------------------


def _run_simulation(ws: Any, months: int, seed: int, end: date | None, quiet: bool) -> Any:
    from leadflow.simulate import simulate

    if quiet:
        return simulate(ws, months=months, seed=seed, end=end)
    with Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} days"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{months} months (seed {seed})", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return simulate(ws, months=months, seed=seed, end=end, progress=progress)


@app.command()
def simulate(
    workspace: WorkspaceOpt = None,
    months: Annotated[int, typer.Option(min=1, max=120, help="Months of business to simulate.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and end date give the same business.")] = 0,
    end: Annotated[
        str | None, typer.Option(help="Last day (exclusive) of the simulation, YYYY-MM-DD; default today.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a realistic simulated business through the pipeline (leads, visits, emails, deals)."""
    ws = _open(workspace)
    summary = _run_simulation(ws, months, seed, _parse_date(end, "--end"), as_json)
    if as_json:
        _dump(summary.as_dict())
    else:
        _print_summary(summary)
    ws.close()


def _print_summary(summary: Any) -> None:
    s = summary.as_dict()
    console.print(
        f"Simulated {s['start']} → {s['end']} in {s['seconds']} s: [bold]{s['leads']:,}[/bold] leads "
        f"({s['submissions']:,} submissions), {s['page_views']:,} page views, {s['activities']:,} activities, "
        f"{s['opportunities']:,} opportunities ({s['won']:,} won, {s['lost']:,} lost), spend {s['spend']}"
    )


@app.command()
def report(
    workspace: WorkspaceOpt = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day, YYYY-MM-DD (default: 12 months before --to, or the month the data begins when later).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Day after the last, YYYY-MM-DD (default: tomorrow, or the day after the data ends when earlier).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metric id (repeat for several; see `leadflow metrics`).")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="Break down by source, medium, campaign, landing_page, "
            "capture_context, country, segment, owner or team."
        ),
    ] = None,
    grain: Annotated[str | None, typer.Option(help="One row per day, week, month, quarter or year.")] = None,
    basis: Annotated[str, typer.Option(help="cohort (default) or period.")] = "cohort",
    model: Annotated[str | None, typer.Option(help="Attribution model (roas, revenue_by_source, ...).")] = None,
    maturity: Annotated[
        int | None,
        typer.Option(help="Days after creation conversion_curve reads its value at (7, 14, 30, 60, 90, 180)."),
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Add the previous period and the change.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    html_file: Annotated[Path | None, typer.Option("--html", help="Write an HTML report with Plotly charts.")] = None,
) -> None:
    """Leads and net lead flow per month and the funnel by source; or any metrics (--metric)."""
    from leadflow.metrics.service import DASHBOARD, compute, default_period, make_query, overview

    ws = _open(workspace)
    with ws.reader() as conn:
        start, end, fitted = default_period(ws, conn, _parse_date(from_, "--from"), _parse_date(to, "--to"))
    if fitted:
        err.print(f"period {start} → {end} ({escape(fitted)}; --from and --to choose another)")
    if not metric and not (as_csv or html_file or by or grain):
        with ws.reader() as conn:
            data = overview(ws, conn, start, end)
        if as_json:
            _dump(data)
        else:
            print_overview(data)
        ws.close()
        return
    ids = list(metric or DASHBOARD)
    query = make_query(start, end, grain=grain, by=by, basis=basis, model=model, maturity=maturity)
    with ws.reader() as conn:
        results = [compute(ws, conn, m, query, compare=compare) for m in ids]
    ws.close()
    _emit_metrics(results, as_json, as_csv, html_file)


def _emit_metrics(results: list[dict[str, Any]], as_json: bool, as_csv: bool, html_file: Path | None) -> None:
    from leadflow.metrics.report import flat_rows, header, left_out_text, to_csv, to_html

    if html_file is not None:
        html_file.write_text(to_html(results), encoding="utf-8")
        err.print(f"wrote {html_file}")
    if as_json:
        _dump(results)
    elif as_csv:
        sys.stdout.write(to_csv(results))
    elif html_file is None:
        for result in results:
            rows = flat_rows(result)
            unit = result.get("duration_unit")
            columns = [
                c for c in dict.fromkeys(k for r in rows for k in r if k != "metric") if not (unit and c == "unit")
            ]
            caption = [f"{result['formula']} · {result['basis']} basis" + (f" · durations in {unit}" if unit else "")]
            caption += [text for text in (result.get("note"), left_out_text(result)) if text]
            table = Table(
                title=f"{result['name']} — {result['definition']}",
                title_justify="left",
                caption=escape("\n".join(caption)),
                caption_justify="left",
            )
            for c in columns:
                justify = "left" if c in ("period", "group", "stage", "reason", "note", "unit") else "right"
                table.add_column(escape(header(result, c)), justify=justify)
            for r in rows:
                table.add_row(*(_cell(r.get(c)) for c in columns))
            console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return escape(str(value))


@app.command("metrics")
def metrics_list(as_json: JsonOpt = False) -> None:
    """The KPI catalogue: every metric id with its definition."""
    from leadflow.metrics.service import catalogue

    items = catalogue()
    if as_json:
        _dump(items)
        return
    table = Table(title="Metrics", title_justify="left")
    for c in ("id", "name", "unit", "definition"):
        table.add_column(c)
    for m in items:
        table.add_row(m["id"], m["name"], m["unit"], m["definition"])
    console.print(table)


def print_overview(data: dict[str, Any]) -> None:
    from leadflow.metrics.report import group_label

    months = Table(title=f"Leads per month ({data['from']} → {data['to']})", title_justify="left")
    for name in ("month", "leads", "lost/disqualified", "became inactive", "net lead flow"):
        months.add_column(name, justify="right" if name != "month" else "left")
    for m in data["months"]:
        flow = m["net_lead_flow"]
        months.add_row(
            m["month"],
            f"{m['leads']:,}",
            f"{m['closed']:,}",
            f"{m['inactive']:,}",
            f"[{'green' if flow >= 0 else 'red'}]{flow:+,}[/]",
        )
    console.print(months)

    stages = data["stages"]
    funnel = Table(
        title="Funnel by source (leads created in the period; share of the source's leads reaching each stage)",
        title_justify="left",
    )
    funnel.add_column("source")
    for stage in stages:
        funnel.add_column(stage, justify="right")
    for row in sorted(data["funnel_by_source"], key=lambda r: -r["leads"]):
        total = row["leads"] or 1
        cells = [f"{row['reached'][stages[0]]:,}"]
        cells += [f"{row['reached'][s]:,} ({100 * row['reached'][s] / total:.0f}%)" for s in stages[1:]]
        funnel.add_row(escape(group_label(row["source"], True) or ""), *cells)
    console.print(funnel)


@app.command()
def serve(
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the API (OpenAPI at /openapi.json, interactive docs at /docs)."""
    ws = _open(workspace)
    _serve(ws, host, port)


def _serve(ws: Any, host: str, port: int) -> None:
    import uvicorn

    from leadflow.api.app import create_app

    console.print(
        f"Serving workspace {ws.path} on [bold]http://{host}:{port}[/bold] (API docs: /docs). Ctrl+C to stop."
    )
    import gc

    application = create_app(ws)
    # What exists now (code, config, compiled rules) lives as long as the server: keep it out of
    # the garbage collector's full passes, which otherwise walk it again and again under load.
    gc.collect()
    gc.freeze()
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def demo(
    workspace: WorkspaceOpt = None,
    months: Annotated[int, typer.Option(min=1, max=60, help="Months of business to simulate.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    serve_: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API afterwards (default) or exit.")
    ] = True,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Simulate a business in a fresh workspace, print a report, then serve it."""
    from leadflow.metrics.service import overview
    from leadflow.workspace import Workspace

    ws = Workspace.init(workspace) if workspace is not None else Workspace.temporary()
    console.print(f"Demo workspace: {ws.path}")
    summary = _run_simulation(ws, months, seed, None, quiet=False)
    _print_summary(summary)
    today = ws.clock.now().date()
    with ws.reader() as conn:
        data = overview(ws, conn, summary.start, date.fromordinal(today.toordinal() + 1))
    print_overview(data)
    console.print(f"Explore it: [bold]leadflow report --workspace {ws.path}[/bold]")
    with ws.transaction() as conn:
        demo_users = _demo_users(ws, conn)
    console.print(f"Dashboard: http://{host}:{port}/app — sign in as (password [bold]{DEMO_PASSWORD}[/bold]):")
    for email, role in demo_users:
        console.print(f"  {role:<9} {email}")
    if serve_:
        from leadflow.access.keys import create_key

        with ws.transaction() as conn:
            key, _ = create_key(conn, "demo", ["admin"], ws.clock.now())
        console.print(
            f"API key for this demo (admin): [bold]{key}[/bold]\n"
            f"  curl -H 'Authorization: Bearer {key}' http://{host}:{port}/api/v1/leads/1\n"
            f"  a web form: http://{host}:{port}/forms/demo"
        )
        _serve(ws, host, port)
    ws.close()


# -- leads ---------------------------------------------------------------------------------------


@leads_app.command("add")
def leads_add(
    payload: Annotated[str, typer.Argument(help="The lead as JSON, or - to read it from standard input.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Capture one lead through the pipeline."""
    from leadflow.leads.schemas import lead_out
    from leadflow.leads.service import get_lead
    from leadflow.pipeline import process

    text = sys.stdin.read() if payload == "-" else payload
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="PAYLOAD") from None
    if not isinstance(data, dict):
        raise typer.BadParameter("a lead is a JSON object", param_hint="PAYLOAD")
    ws = _open(workspace)
    with ws.transaction() as conn:
        result = process(ws, conn, data, actor="cli")
        row = get_lead(conn, result.lead_id)
    out = lead_out(row, ws.rules.scoring)
    if as_json:
        _dump({"created": result.created, "lead": out.model_dump(mode="json")})
    else:
        verb = "created" if result.created else "updated (matched an existing lead)"
        console.print(
            f"lead {out.id} {verb}: stage [bold]{out.stage}[/bold], score {out.score.value} (grade {out.score.grade}), "
            f"owner {out.assignment.owner or '—'}, respond by {out.assignment.sla_due_at or '—'}"
        )
    ws.close()


@leads_app.command("show")
def leads_show(lead_id: int, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """A lead with its score explanation and event history."""
    from leadflow import events
    from leadflow.leads.schemas import event_out, lead_out
    from leadflow.leads.service import get_lead

    ws = _open(workspace)
    with ws.reader() as conn:
        out = lead_out(get_lead(conn, lead_id), ws.rules.scoring)
        history = [event_out(e) for e in events.for_lead(conn, lead_id)]
    if as_json:
        _dump({**out.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in history]})
    else:
        from leadflow.capture.text import shown

        def safe(value: object) -> str:  # stored text never drives the terminal or rich markup
            return escape(shown(value))

        name = (
            " ".join(filter(None, (out.contact.first_name, out.contact.last_name)))
            or out.contact.email
            or f"lead {out.id}"
        )
        console.print(
            f"[bold]{safe(name)}[/bold] — {safe(out.company.name or '?')} — stage {safe(out.stage)}, "
            f"owner {safe(out.assignment.owner or '—')}"
        )
        table = Table(title=f"score {out.score.value} (grade {out.score.grade})", title_justify="left")
        for col in ("rule", "kind", "points", "why"):
            table.add_column(col, justify="right" if col == "points" else "left")
        for line in out.score.explanation:
            table.add_row(safe(line.rule), safe(line.kind), f"{line.points:+d}", safe(line.why))
        console.print(table)
        timeline = Table(title="history", title_justify="left")
        for col in ("when", "event", "by", "detail"):
            timeline.add_column(col)
        for e in history:
            timeline.add_row(
                e.occurred_at.strftime("%Y-%m-%d %H:%M"),
                safe(e.type),
                safe(e.actor),
                safe(json.dumps(e.data, default=str)[:90]),
            )
        console.print(timeline)
    ws.close()


@leads_app.command("list")
def leads_list(
    workspace: WorkspaceOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    stage: Annotated[str | None, typer.Option(help="Only leads in this stage.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only leads of this owner.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest leads."""
    from leadflow.leads.schemas import lead_out
    from leadflow.leads.service import list_leads

    ws = _open(workspace)
    with ws.reader() as conn:
        rows = [lead_out(r, ws.rules.scoring) for r in list_leads(conn, limit=limit, stage=stage, owner=owner)]
    if as_json:
        _dump([r.model_dump(mode="json") for r in rows])
    else:
        table = Table()
        for col in ("id", "created", "company", "source", "stage", "score", "owner"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r.id),
                r.created_at.strftime("%Y-%m-%d"),
                r.company.name or "—",
                r.attribution.source or "—",
                r.stage,
                str(r.score.value),
                r.assignment.owner or "—",
            )
        console.print(table)
    ws.close()


@leads_app.command("stage")
def leads_stage(
    lead_id: int,
    stage: Annotated[str, typer.Argument(help="The stage to move to.")],
    reason: Annotated[str | None, typer.Option(help="Why (required for disqualified, lost, recycled).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Move a lead to another stage (refused, with the reason, when the move makes no sense)."""
    from leadflow.qualify.service import change_stage

    ws = _open(workspace)
    with ws.transaction() as conn:
        moved = change_stage(ws, conn, lead_id, stage, reason=reason, actor="cli")
    console.print(f"lead {lead_id}: {moved['from']} → [bold]{moved['to']}[/bold]")
    ws.close()


@leads_app.command("assign")
def leads_assign(
    lead_id: int,
    owner: Annotated[str | None, typer.Option(help="Give the lead to this owner.")] = None,
    team: Annotated[str | None, typer.Option(help="Or to the next owner of this team.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Assign a lead to an owner or a team (its strategy picks the owner)."""
    from leadflow.routing.service import reassign

    if (owner is None) == (team is None):
        raise typer.BadParameter("give exactly one of --owner or --team")
    ws = _open(workspace)
    with ws.transaction() as conn:
        trace = reassign(ws, conn, lead_id, owner=owner, team=team, actor="cli", reason=reason)
    console.print(f"lead {lead_id} → [bold]{trace.get('owner') or 'nobody yet'}[/bold] ({trace.get('strategy')})")
    ws.close()


@leads_app.command("why")
def leads_why(lead_id: int, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Why a lead has its owner: the rule, the strategy, who was skipped and why; and its SLA."""
    from leadflow import events
    from leadflow.leads.service import get_lead

    ws = _open(workspace)
    with ws.reader() as conn:
        lead = get_lead(conn, lead_id)
        history = [
            e for e in events.for_lead(conn, lead_id) if e["type"] in (events.LEAD_ASSIGNED, events.SLA_ESCALATED)
        ]
    ws.close()
    if as_json:
        _dump([{"type": e["type"], "at": e["occurred_at"], **e["data"]} for e in history])
        return
    console.print(
        f"lead {lead_id}: owner [bold]{lead['owner_id'] or '—'}[/bold], team {lead['team_id'] or '—'}, "
        f"destination {lead['destination'] or '—'}, SLA {lead['sla_policy'] or '—'} due {lead['sla_due_at'] or '—'}"
    )
    for e in history:
        d = e["data"]
        trace = d.get("trace", d)
        console.print(
            f"  {e['occurred_at']:%Y-%m-%d %H:%M} {e['type']}: rule {trace.get('rule')} → "
            f"{trace.get('owner') or trace.get('waiting') or trace.get('destination')} ({trace.get('strategy', d.get('action'))})"
        )
        if trace.get("turn"):
            console.print(f"      {trace['turn']}")
        for skipped in trace.get("skipped", []):
            console.print(f"      skipped {skipped['owner']}: {skipped['why']}")


@handoff_app.command("accept")
def handoff_accept(
    lead_id: int, note: Annotated[str | None, typer.Option()] = None, workspace: WorkspaceOpt = None
) -> None:
    """Sales accepts a lead handed off to it."""
    from leadflow.handoff.service import accept

    ws = _open(workspace)
    with ws.transaction() as conn:
        out = accept(ws, conn, lead_id, actor="cli", note=note)
    console.print(f"lead {lead_id}: accepted, now {out['stage']}")
    ws.close()


@handoff_app.command("reject")
def handoff_reject(
    lead_id: int,
    reason: Annotated[str, typer.Argument(help="One of the workspace's handoff.reasons, e.g. not_a_fit, bad_timing.")],
    note: Annotated[str | None, typer.Option()] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Sales rejects a lead with a reason; the workspace's rules recycle it or disqualify it."""
    from leadflow.handoff.service import reject

    ws = _open(workspace)
    with ws.transaction() as conn:
        out = reject(ws, conn, lead_id, reason=reason, actor="cli", note=note)
    console.print(f"lead {lead_id}: rejected ({reason}), now {out['stage']}")
    ws.close()


@handoff_app.command("show")
def handoff_show(lead_id: int, workspace: WorkspaceOpt = None) -> None:
    """The handoff package of a lead (JSON)."""
    from leadflow.handoff.service import package

    ws = _open(workspace)
    with ws.reader() as conn:
        _dump(package(ws, conn, lead_id))
    ws.close()


@owners_app.command("list")
def owners_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Owners, their teams and settings."""
    from leadflow.routing.service import list_owners

    ws = _open(workspace)
    with ws.reader() as conn:
        rows = list_owners(conn)
    ws.close()
    if as_json:
        _dump(rows)
        return
    table = Table()
    for col in ("id", "name", "team", "manager", "active", "weight", "caps d/w", "from"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            r["team_id"] or "—",
            r["manager_id"] or "—",
            "yes" if r["active"] else "no",
            str(r["weight"]),
            f"{r['capacity_day'] or '—'}/{r['capacity_week'] or '—'}",
            r["origin"],
        )
    console.print(table)


@owners_app.command("import")
def owners_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of owners.")],
    name_column: Annotated[str, typer.Option(help="Column with the owner's name.")] = "sales_agent",
    manager_column: Annotated[str, typer.Option(help="Column with the manager's name ('' for none).")] = "manager",
    team_column: Annotated[str, typer.Option(help="Column with the office or team ('' for none).")] = "regional_office",
    email_column: Annotated[str, typer.Option(help="Column with the email ('' for none).")] = "",
    email_domain: Annotated[str, typer.Option(help="Without an email column: first.last@DOMAIN.")] = "",
    workspace: WorkspaceOpt = None,
) -> None:
    """Add or update owners and teams from a CSV (default columns: the Maven CRM sales_teams.csv)."""
    from leadflow.routing.directory_import import Columns, read_directory
    from leadflow.routing.service import upsert_owners, upsert_teams

    columns = Columns(
        name_column, manager_column or None, team_column or None, email_column or None, email_domain or None
    )
    teams, owners = read_directory(file, columns)
    ws = _open(workspace)
    with ws.transaction() as conn:
        t = upsert_teams(ws, conn, teams)
        o = upsert_owners(ws, conn, owners)
    ws.close()
    console.print(
        f"teams: {t['created']} created, {t['updated']} updated; owners: {o['created']} created, {o['updated']} updated"
    )


@review_app.command("list")
def review_list(
    workspace: WorkspaceOpt = None,
    status: Annotated[str, typer.Option(help="open, accepted, rejected or all")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Leads waiting for a human look, with why."""
    from leadflow.qualify.review import list_items

    if status not in ("open", "accepted", "rejected", "all"):
        raise typer.BadParameter("open, accepted, rejected or all", param_hint="--status")
    ws = _open(workspace)
    with ws.reader() as conn:
        rows = list_items(conn, status=None if status == "all" else status, limit=limit)
    if as_json:
        _dump(rows)
    else:
        table = Table(title=f"quality review ({status})", title_justify="left")
        for col in ("id", "lead", "rule", "reason", "score", "status"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["id"]),
                str(r["lead_id"]),
                r["rule"],
                r["reason"],
                str((r["evidence"] or {}).get("score", "")),
                r["status"],
            )
        console.print(table)
    ws.close()


@review_app.command("decide")
def review_decide(
    item_id: int,
    decision: Annotated[str, typer.Argument(help="accept or reject")],
    reason: Annotated[str, typer.Option(help="Why: kept as labelled data.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Accept (to MQL) or reject (disqualify) a lead under review."""
    from leadflow.qualify.review import decide

    ws = _open(workspace)
    with ws.transaction() as conn:
        result = decide(ws, conn, item_id, decision, reason=reason, actor="cli")
    console.print(f"review {item_id}: {result['status']}; lead {result['lead_id']} is now {result['stage']}")
    ws.close()


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="Who uses it, e.g. website, crm-sync.")],
    scope: Annotated[list[str], typer.Option("--scope", help="Repeat for each scope; see `leadflow apikey scopes`.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from leadflow.access.keys import create_key

    ws = _open(workspace)
    with ws.transaction() as conn:
        key, made = create_key(conn, name, scope, ws.clock.now())
    if as_json:
        _dump({"name": made.name, "scopes": sorted(made.scopes), "key": key})
    else:
        console.print(
            f"API key [bold]{made.name}[/bold] ({', '.join(sorted(made.scopes))}):\n{key}\nKeep it now: it is not shown again."
        )
    ws.close()


@apikey_app.command("list")
def apikey_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """API keys, without their secrets."""
    from leadflow.access.keys import list_keys

    ws = _open(workspace)
    with ws.reader() as conn:
        rows = list_keys(conn)
    if as_json:
        _dump(rows)
    else:
        table = Table()
        for col in ("name", "prefix", "scopes", "created", "last used", "revoked"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["name"],
                r["prefix"],
                ", ".join(r["scopes"]),
                str(r["created_at"])[:16],
                str(r["last_used_at"] or "—")[:16],
                str(r["revoked_at"] or "—")[:16],
            )
        console.print(table)
    ws.close()


@apikey_app.command("revoke")
def apikey_revoke(name: str, workspace: WorkspaceOpt = None) -> None:
    """Revoke an API key (effective within seconds on running servers)."""
    from leadflow.access.keys import revoke_key

    ws = _open(workspace)
    with ws.transaction() as conn:
        revoke_key(conn, name, ws.clock.now())
    console.print(f"revoked {name}")
    ws.close()


@apikey_app.command("scopes")
def apikey_scopes() -> None:
    """The scopes a key can have."""
    from leadflow.access.keys import SCOPES

    for scope, what in SCOPES.items():
        console.print(f"[bold]{scope}[/bold]: {what}")


@app.command()
def worker(
    workspace: WorkspaceOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run every task until nothing is due, then exit.")] = False,
) -> None:
    """Run timed work (score decay, ...) until stopped; any number of workers may run at once."""
    import threading

    from leadflow.jobs.worker import run_forever, run_once

    ws = _open(workspace)
    if once:
        for name, done in run_once(ws).items():
            console.print(f"{name}: {done}")
    else:
        console.print(f"worker on {ws.path}: Ctrl+C to stop")
        stop = threading.Event()
        try:
            run_forever(ws, stop)
        except KeyboardInterrupt:
            stop.set()
    ws.close()


@nurture_app.command("run")
def nurture_run(workspace: WorkspaceOpt = None) -> None:
    """Enrol leads and run every due step now, then deliver the emails (the worker does this on its own)."""
    from leadflow.jobs.worker import TASKS, run_task

    ws = _open(workspace)
    for name in ("nurture.enrol", "nurture.advance", "notify.send"):
        console.print(f"{name}: {run_task(ws, TASKS[name])}")
    ws.close()


@nurture_app.command("report")
def nurture_report(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Messages sent, per-step open/click/reply/unsubscribe rates, enrolled vs holdout conversion."""
    from leadflow.nurture.report import report

    ws = _open(workspace)
    with ws.reader() as conn:
        out = report(ws, conn)
    ws.close()
    if as_json:
        _dump(out)
        return
    for seq_id, seq in out["sequences"].items():
        table = Table(title=f"{seq_id}: {seq['enrolled']} enrolled, {seq['messages_sent']} emails")
        for col in ("step", "template", "sent", "opened", "clicked", "replied", "unsubscribed"):
            table.add_column(col)
        for st in seq["steps"]:
            table.add_row(
                str(st["step"]),
                st["template"] or "—",
                str(st["sent"]),
                *(_pct(st[f"{k}_rate"]) for k in ("opened", "clicked", "replied", "unsubscribed")),
            )
        console.print(table)
        conv = seq["conversion"]
        interval = conv["difference_interval_95"]
        console.print(
            f"  reached {seq['goal_stage']}: enrolled {_pct(conv['enrolled']['rate'])} of {conv['enrolled']['leads']}, "
            f"holdout {_pct(conv['holdout']['rate'])} of {conv['holdout']['leads']}; difference "
            f"{_pct(conv['difference'])} (95% CI {_pct(interval[0]) if interval else '—'} to "
            f"{_pct(interval[1]) if interval else '—'}){' — significant' if conv['significant'] else ''}"
        )


@privacy_app.command("export")
def privacy_export(lead_id: int, workspace: WorkspaceOpt = None) -> None:
    """Everything leadflow holds about a lead, as JSON (a subject access request)."""
    from leadflow.privacy.service import export

    ws = _open(workspace)
    with ws.reader() as conn:
        _dump(export(ws, conn, lead_id))
    ws.close()


@privacy_app.command("erase")
def privacy_erase(
    lead_id: int,
    reason: Annotated[str, typer.Option(help="Why, e.g. the person's request and its date.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Erase a lead's personal data everywhere and stop all contact (kept: its non-personal history)."""
    from leadflow.privacy.service import erase

    ws = _open(workspace)
    with ws.transaction() as conn:
        out = erase(ws, conn, lead_id, actor="cli", reason=reason)
    ws.close()
    leads = ", ".join(map(str, out["leads"]))
    console.print(f"lead {lead_id}: erased {', '.join(out['fields'])} of the person (leads {leads})")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


# -- forms -----------------------------------------------------------------------------------------

forms_app = typer.Typer(help="Public web forms.", no_args_is_help=True)
app.add_typer(forms_app, name="forms")


@forms_app.command("refusals")
def forms_refusals(
    workspace: WorkspaceOpt = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Today and the days before it.")] = 7,
    since: Annotated[str | None, typer.Option(help="From this day (YYYY-MM-DD) instead of --days.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many of the latest to list.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """What the form guards turned away (honeypot, too fast, bad token, rate limit): counts per day
    and reason, and the latest ones (no personal data: the network, never the address)."""
    from leadflow.capture import refusals

    ws = _open(workspace)
    with ws.reader() as conn:
        start = _parse_date(since, "--since")
        report = refusals.report(
            conn,
            since=datetime.combine(start, time.min, UTC) if start else refusals.default_since(ws.clock.now(), days),
            limit=limit,
        )
    if as_json:
        _dump(
            {
                **report,
                "since": report["since"].isoformat(),
                "recent": [{**r, "at": r["at"].isoformat()} for r in report["recent"]],
            }
        )
    else:
        counts = Table(title=f"refused since {report['since']:%Y-%m-%d}", title_justify="left")
        for col in ("day", "reason", "count"):
            counts.add_column(col, justify="right" if col == "count" else "left")
        for row in report["days"]:
            counts.add_row(row["day"], row["reason"], str(row["count"]))
        console.print(counts)
        latest = Table(title="latest", title_justify="left")
        for col in ("when", "reason", "form", "network", "count"):
            latest.add_column(col)
        for row in report["recent"]:
            latest.add_row(
                f"{row['at']:%Y-%m-%d %H:%M:%S}",
                row["reason"],
                row["context"] or "—",
                row["network"],
                str(row["count"]),
            )
        console.print(latest)
    ws.close()


# -- dedupe, merge, unmerge ----------------------------------------------------------------------

duplicates_app = typer.Typer(
    help="The duplicate review queue: pairs of leads that may be one person.", no_args_is_help=True
)
app.add_typer(duplicates_app, name="duplicates")


@app.command()
def dedupe(
    file: Annotated[
        Path | None, typer.Argument(help="A CSV file to dedupe on its own (default: the database).")
    ] = None,
    fields: Annotated[
        str | None,
        typer.Option(help="CSV: lead fields to match on, FIELD or FIELD=COLUMN, comma-separated (email,phone,...)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV: where to write the rows with cluster_id.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Database: report clusters, merge nothing.")] = False,
    reindex: Annotated[bool, typer.Option(help="Database: file every lead under its blocking keys first.")] = False,
    estimate: Annotated[bool, typer.Option(help="Print m/u estimated from the data (for the workspace file).")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find duplicate clusters: across the whole database (merging the sure ones, queueing the
    likely ones for review), or in a CSV file before import (a cluster id per row)."""
    from leadflow.identity import batch

    if file is not None:
        from leadflow.config.identity import MatchSettings
        from leadflow.identity.matching import MatchModel

        if output is None:
            raise typer.BadParameter("give --output OUT.csv for the rows with their cluster id", param_hint="--output")
        mapping = None
        if fields:
            mapping = {}
            for part in fields.split(","):
                name, _, column = part.strip().partition("=")
                if name not in (*batch.MATCH_FIELDS,) and not name.startswith("custom."):
                    raise typer.BadParameter(
                        f"{name!r} is not a field to match on; use {', '.join(batch.MATCH_FIELDS)} or custom.NAME",
                        param_hint="--fields",
                    )
                mapping[name] = column or name
        settings = MatchSettings()
        if workspace is not None or (Path.cwd() / "leadflow.yaml").exists():
            ws = _open(workspace)
            settings = ws.config.identity.match
            ws.close()
        model = MatchModel(settings)
        if estimate:
            _dump(_estimate_csv(model, file, mapping))
            return
        result = batch.dedupe_csv(model, file, output, mapping)
        summary = {
            "rows": result.records,
            "clusters_with_duplicates": result.duplicate_clusters,
            "duplicate_rows": result.duplicates,
            "to_review": len(result.review_pairs),
            "output": str(output),
        }
        if as_json:
            _dump(summary)
        else:
            console.print(
                f"{result.records} rows: [bold]{result.duplicates}[/bold] duplicates in {result.duplicate_clusters} "
                f"clusters, {len(result.review_pairs)} likely pairs below the merge threshold → {output}"
            )
        return

    ws = _open(workspace)
    if estimate:
        from leadflow.identity.estimate import estimate as estimate_mu
        from leadflow.identity.service import match_model

        with ws.reader() as conn:
            rows = [dict(r._mapping) for r in conn.execute(batch.sample_statement(200_000))]
        _dump({"comparisons": estimate_mu(match_model(ws.rules), rows, pairs=1_000_000)})
        ws.close()
        return
    with Progress(
        TextColumn("[bold]dedupe[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=as_json,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        with ws.transaction() as conn:
            if reindex:
                from leadflow.identity.service import match_model

                batch.reindex(conn, match_model(ws.rules), progress)
            result = batch.dedupe_database(ws, conn, merge=not dry_run, progress=progress)
    summary = {
        "leads": result.records,
        "candidate_pairs": result.candidate_pairs,
        "clusters_with_duplicates": result.duplicate_clusters,
        "merged" if not dry_run else "would_merge": result.duplicates,
        "queued_for_review": len(result.review_pairs),
    }
    if as_json:
        _dump(summary)
    else:
        table = Table(title="dedupe" + (" (dry run)" if dry_run else ""))
        table.add_column("")
        table.add_column("", justify="right")
        for k, v in summary.items():
            table.add_row(k.replace("_", " "), str(v))
        console.print(table)
    ws.close()


def _estimate_csv(model: Any, file: Path, mapping: dict[str, str] | None) -> dict[str, Any]:
    import csv as _csv

    from leadflow.identity.estimate import estimate as estimate_mu

    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(_csv.DictReader(handle))
    mapping = mapping or {c: c for c in (rows[0] if rows else {})}
    records = [{f: row.get(c) for f, c in mapping.items() if row.get(c)} for row in rows]
    return {"comparisons": estimate_mu(model, records, pairs=min(1_000_000, len(records) ** 2))}


@leads_app.command("merge")
def leads_merge(
    survivor: Annotated[int, typer.Argument(help="The lead that stays.")],
    other: Annotated[int, typer.Argument(help="The lead merged into it.")],
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge one lead into another (survivorship rules decide each field; undo with unmerge)."""
    from leadflow.identity.merge import merge_leads

    ws = _open(workspace)
    with ws.transaction() as conn:
        out = merge_leads(ws, conn, survivor, other, actor="cli", reason=reason)
    if as_json:
        _dump(out)
    else:
        console.print(f"lead {other} merged into lead [bold]{survivor}[/bold] (merge {out['merge_id']})")
    ws.close()


@leads_app.command("unmerge")
def leads_unmerge(lead_id: int, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Undo the merge of a lead: both leads return exactly as they were."""
    from leadflow.identity.merge import unmerge_leads

    ws = _open(workspace)
    with ws.transaction() as conn:
        out = unmerge_leads(ws, conn, lead_id, actor="cli")
    if as_json:
        _dump(out)
    else:
        console.print(f"lead {lead_id} is its own lead again (was merged into lead {out['survivor_id']})")
    ws.close()


@duplicates_app.command("list")
def duplicates_list(
    status: Annotated[str, typer.Option(help="open | merged | kept_apart | all")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pairs of leads that may be one person, with the evidence."""
    from leadflow.identity.review import list_pairs

    ws = _open(workspace)
    with ws.reader() as conn:
        pairs = list_pairs(conn, status=None if status == "all" else status, limit=limit)
    ws.close()
    if as_json:
        _dump(pairs)
        return
    table = Table(title=f"duplicate pairs ({status})")
    for column in ("id", "leads", "probability", "agreed", "status"):
        table.add_column(column)
    for p in pairs:
        table.add_row(
            str(p["id"]),
            f"{p['lead_id']} ~ {p['other_lead_id']}",
            f"{p['probability']:.3f}",
            ", ".join(f"{f} ({p['evidence'][f]['level']})" for f in p["agreed"]),
            p["status"],
        )
    console.print(table)


@duplicates_app.command("decide")
def duplicates_decide(
    pair_id: int,
    decision: Annotated[str, typer.Argument(help="merge | keep_apart")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    survivor: Annotated[int | None, typer.Option(help="Which lead survives a merge (default: the older).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Merge a pair or keep it apart; the decision is remembered."""
    from leadflow.identity.review import decide_pair

    ws = _open(workspace)
    with ws.transaction() as conn:
        out = decide_pair(ws, conn, pair_id, decision, reason=reason, actor="cli", survivor_id=survivor)
    console.print(f"pair {pair_id}: [bold]{out['status']}[/bold]")
    ws.close()


def main() -> None:
    """The ``leadflow`` command. Once the command has finished — its transactions committed, its
    workspace closed, its output written — the process ends at once: tearing down the interpreter
    (every module of SQLAlchemy, pydantic, NumPy) took a quarter of a second, longer than most
    commands' own work."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code: int = 0
    try:
        app()
    except LeadflowError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = 1
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Flush what was written and end the process without the interpreter's teardown (atexit
    handlers still run: logging's flush and anything a library registered)."""
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


# -- dashboard users -------------------------------------------------------------------------------

DEMO_PASSWORD = "leadflow-demo"


def _demo_users(ws: Any, conn: Any) -> list[tuple[str, str]]:
    """One demo user per role: a rep (the first owner), the manager of that team, a marketer, an admin."""
    from leadflow.dashboard.users import create_user
    from leadflow.routing.service import list_owners

    owners = [o for o in list_owners(conn) if o["active"]]
    first = owners[0] if owners else None
    now = ws.clock.now()
    made = []
    for role, email, owner, team in (
        ("rep", f"{first['id']}@demo.leadflow" if first else "rep@demo.leadflow", first["id"] if first else None, None),
        ("manager", "manager@demo.leadflow", None, first["team_id"] if first else None),
        ("marketer", "marketer@demo.leadflow", None, None),
        ("admin", "admin@demo.leadflow", None, None),
    ):
        if role in ("rep", "manager") and first is None:
            continue
        create_user(
            conn, email, DEMO_PASSWORD, role, now, owner=owner, team=team, name=f"Demo {role}" if not owner else None
        )
        made.append((email, role))
    return made


@user_app.command("create")
def user_create(
    email: str,
    role: Annotated[str, typer.Option(help="rep, manager, marketer or admin.")] = "rep",
    owner: Annotated[str | None, typer.Option(help="The owner a rep or manager works as.")] = None,
    team: Annotated[str | None, typer.Option(help="The team a manager sees (default: the owner's team).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters.")
    ] = "",
    workspace: WorkspaceOpt = None,
) -> None:
    """Add a person who signs in to the dashboard (the password is stored as an argon2 hash)."""
    from leadflow.dashboard.users import create_user

    ws = _open(workspace)
    with ws.transaction() as conn:
        user = create_user(conn, email, password, role, ws.clock.now(), owner=owner, team=team, name=name)
    ws.close()
    console.print(f"user {user.email} created: {user.role}, owner {user.owner_id or '—'}, team {user.team_id or '—'}")


@user_app.command("list")
def user_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Dashboard users and their roles."""
    from leadflow.dashboard.users import list_users

    ws = _open(workspace)
    with ws.reader() as conn:
        rows = list_users(conn)
    ws.close()
    if as_json:
        _dump(rows)
        return
    for r in rows:
        console.print(f"{r['email']:<32} {r['role']:<9} owner {r['owner_id'] or '—'}  team {r['team_id'] or '—'}")


if __name__ == "__main__":
    main()
