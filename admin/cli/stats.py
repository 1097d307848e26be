"""``triage stats``: the desk's figures per department, as a table or as JSON for dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from admin.cli.jobs_runtime import run_with_context
from admin.cli.terminal import stdout
from admin.context import AdminContext
from admin.desk_stats import MAX_DAYS, DeskStats, build_desk_stats, render_lines
from admin.desk_stats_png import desk_stats_png


def stats_command(
    days: int = typer.Option(7, "--days", min=1, max=MAX_DAYS, help="Days of tickets to count."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the stable JSON for dashboards (schema triage.stats/1)."
    ),
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Write the picture (tickets and first response per day)."),
    ] = None,
) -> None:
    """Per department: tickets, share taken, time to first response and to resolution (median,
    p90), open backlog and its oldest ticket, target breaches, corrections."""

    async def body(ctx: AdminContext) -> DeskStats:
        return await build_desk_stats(ctx.db, ctx.taxonomy, days=days, now=ctx.clock.now())

    stats = run_with_context(body)
    if as_json:
        typer.echo(json.dumps(stats.as_json(), indent=2, ensure_ascii=False))
    else:
        stdout.print(
            f"Desk figures, {stats.since:%Y-%m-%d %H:%M} to {stats.until:%Y-%m-%d %H:%M} UTC",
            highlight=False,
        )
        for line in render_lines(stats):
            stdout.print(line, markup=False, highlight=False)
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(desk_stats_png(stats))
        if not as_json:
            stdout.print(f"Picture written to {png}", highlight=False)
