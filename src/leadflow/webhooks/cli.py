"""``leadflow webhooks ...``: the delivery log. Thin: open the workspace, read, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

webhooks_app = typer.Typer(help="Outgoing webhooks and their delivery log.", no_args_is_help=True)
console = Console()

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace", "-w", help="Workspace directory (default: $LEADFLOW_WORKSPACE, else the current directory)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@webhooks_app.command("log")
def log(
    workspace: WorkspaceOpt = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="Only this webhook id.")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event (evt_<id> or <id>).")] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="Only attempts that ended so: delivered, failed, error, sending.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Every delivery attempt, newest first: when, the receiver's HTTP status, how long, the error."""
    from leadflow.webhooks.service import list_attempts
    from leadflow.workspace import Workspace

    if outcome is not None and outcome not in ("delivered", "failed", "error", "sending"):
        raise typer.BadParameter("write delivered, failed, error or sending", param_hint="--outcome")
    if event is not None and not event.removeprefix("evt_").isdigit():
        raise typer.BadParameter(f"{event!r} is not an event id; write evt_<id>", param_hint="--event")
    ws = Workspace.open(workspace)
    with ws.reader() as conn:
        rows = list_attempts(
            conn,
            webhook_id=webhook,
            event_id=int(event.removeprefix("evt_")) if event else None,
            outcome=outcome,
            limit=limit,
        )
    ws.close()
    if as_json:
        print(json.dumps([_public(r) for r in rows], indent=2, default=str, ensure_ascii=False))
        return
    table = Table(title="webhook attempts, newest first", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("started (UTC)", "webhook", "event", "try", "HTTP", "ms", "outcome", "error"):
        table.add_column(column, justify="right" if column in ("try", "HTTP", "ms") else "left")
    for r in rows:
        table.add_row(
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            escape(r["webhook_id"]),
            f"evt_{r['event_id']}",
            str(r["attempt"]),
            str(r["status"] or "—"),
            f"{r['duration_ms']:.0f}" if r["duration_ms"] is not None else "—",
            r["outcome"],
            escape(r["error"] or ""),
        )
    console.print(table)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "started_at": row["started_at"].isoformat()}
