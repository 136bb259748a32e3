"""``leadflow import``: a CSV file of leads, activity, deals, spend or revenue, exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace", "-w", help="Workspace directory (default: $LEADFLOW_WORKSPACE, else the current directory)."
    ),
]
WARNINGS_SHOWN = 20


def import_csv(
    file: Annotated[Path, typer.Argument(help="The CSV file.", exists=True, dir_okay=False)],
    kind: Annotated[str, typer.Option(help="leads, events, opportunities, spend or revenue.")] = "leads",
    mapping: Annotated[Path | None, typer.Option(help="Which column is which (YAML).", exists=True)] = None,
    encoding: Annotated[
        str, typer.Option(help="The file's text encoding, e.g. cp1252 for Excel on Windows (a BOM wins).")
    ] = "utf-8",
    delimiter: Annotated[
        str | None, typer.Option(help="What splits the columns: , ; | or \\t for tab (default: found from the file).")
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Take the rows as captured now: routed, notified, SLA clocks, nurture, webhooks "
            "(default: history, recorded as of each row's time with nothing sent or scheduled).",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Import a CSV file, in batches, exactly once; rejected rows go to FILE.errors.csv.
    Exit status 1 when no row landed."""
    from leadflow.imports.service import import_file
    from leadflow.workspace import Workspace

    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
    ws = Workspace.open(workspace)
    options: dict[str, Any] = {"mapping_path": mapping, "encoding": encoding, "delimiter": delimiter, "live": live}
    try:
        if as_json:
            summary = import_file(ws, file, kind, **options)
        else:
            with Progress(
                TextColumn(f"[bold]importing[/bold] {escape(file.name)}"),
                BarColumn(),
                TextColumn("{task.fields[where]}"),
                TimeElapsedColumn(),
                console=err,
            ) as bar:
                task = bar.add_task("import", total=None, where="")
                summary = import_file(
                    ws,
                    file,
                    kind,
                    **options,
                    progress=lambda line, lines: bar.update(
                        task, completed=line, total=lines, where=f"line {line:,} of {lines:,}"
                    ),
                )
    finally:
        ws.close()
    if as_json:
        print(json.dumps({**summary.as_dict(), "landed": summary.landed}, indent=2, default=str, ensure_ascii=False))
    elif summary.already_imported:
        console.print(
            f"{escape(file.name)} was imported before (run {summary.run_id}): nothing added. Then: {summary.rows_read:,} rows, "
            f"{summary.created:,} created, {summary.merged:,} updated or merged, {summary.rejected:,} rejected"
        )
    else:
        print_summary(summary)
    if not summary.already_imported and summary.landed == 0:
        raise typer.Exit(1)


def print_summary(summary: Any) -> None:
    resumed = f" (resumed after line {summary.resumed_after_line:,})" if summary.resumed_after_line else ""
    console.print(
        f"{summary.rows_read:,} rows{resumed}: {summary.created:,} created, {summary.merged:,} updated or merged, "
        f"{summary.rejected:,} rejected" + (f" (see {escape(summary.error_file)})" if summary.error_file else "")
    )
    if summary.delimiter != ",":
        console.print(f"columns split by {summary.delimiter!r}")
    if summary.history:
        console.print(
            f"{summary.history:,} rows taken as history: recorded as of their own time; nobody notified, "
            "no SLA clock, no routing, no nurture, no webhook (--live to treat them as captured now)"
        )
    if summary.stages:
        console.print(f"{summary.stages:,} stage changes recorded at their own times")
    for what, n in summary.counts.items():
        console.print(f"{n:,} {escape(what)}")
    if summary.undeclared_sources:
        shown = ", ".join(f"{escape(k)} ({n:,})" for k, n in list(summary.undeclared_sources.items())[:10])
        console.print(
            f"sources not declared in leadflow.yaml: {shown}"
            + (" ..." if len(summary.undeclared_sources) > 10 else "")
            + " — declare them under sources: to give them spend and count them where only declared sources count"
        )
    if summary.unknown_owners:
        shown = ", ".join(f"{escape(k)} ({n:,})" for k, n in list(summary.unknown_owners.items())[:10])
        console.print(
            f"owners the directory does not know, kept as written: {shown}"
            + (" ..." if len(summary.unknown_owners) > 10 else "")
            + " (leadflow owners import adds them)"
        )
    for w in summary.warnings[:WARNINGS_SHOWN]:
        console.print(f"[yellow]warning[/yellow] line {w['line']:,}: {escape(w['field'])}: {escape(w['message'])}")
    if len(summary.warnings) > WARNINGS_SHOWN:
        console.print(f"... and {len(summary.warnings) - WARNINGS_SHOWN:,} more warnings (--json lists them all)")
    for r in summary.rejections[:WARNINGS_SHOWN]:
        console.print(f"[red]rejected[/red] line {r['line']:,}: {escape(r['reason'])}")
    if len(summary.rejections) > WARNINGS_SHOWN:
        console.print(f"... and {len(summary.rejections) - WARNINGS_SHOWN:,} more rejected rows (in the errors file)")
