"""``triage tickets``: list tickets, and hand failed ones back to the bot (``retry``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from admin import tickets
from admin.cli.jobs_runtime import cli_user, run_with_context
from admin.cli.terminal import fail, stderr, stdout
from admin.context import AdminContext
from admin.tickets import RetryOutcome
from data.clock import as_utc
from data.db.tickets import TicketSummary

#: How much of a ticket's text a listing shows.
PREVIEW_CHARS = 60


def _preview(text: str) -> str:
    """The start of a ticket's text on one line (runs of whitespace shown as one space)."""
    return " ".join(text.split())[:PREVIEW_CHARS]


def _as_json(summary: TicketSummary) -> dict[str, Any]:
    ticket = summary.ticket
    return {
        "id": ticket.id,
        "channel": ticket.channel,
        "ts": ticket.ts,
        "status": ticket.status,
        "attempts": ticket.attempts,
        "updated_at": as_utc(ticket.updated_at).isoformat(),
        "label": summary.label,
        "text": _preview(ticket.text),
    }


def list_command(
    status: Annotated[
        str | None, typer.Option("--status", help="Only tickets in this status, e.g. failed.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many tickets to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The newest tickets: status, routing attempts, latest label and the start of the text."""
    tickets.check_status(status)
    tickets.check_limit(limit)

    async def body(ctx: AdminContext) -> list[TicketSummary]:
        return await tickets.list_tickets(ctx.db, status, limit)

    found = run_with_context(body)
    if as_json:
        typer.echo(json.dumps({"tickets": [_as_json(summary) for summary in found]}))
        return
    if not found:
        stdout.print(f"No {status} tickets." if status else "No tickets yet.", highlight=False)
        return
    which = f"{status.capitalize()} tickets" if status else "Tickets"
    table = Table(title=f"{which} (newest first)", box=box.SIMPLE_HEAD, pad_edge=False)
    # On a narrow terminal the identifying columns fold instead of being cut with an ellipsis.
    for column in ("id", "channel", "ts", "status", "attempts", "updated (UTC)", "label"):
        table.add_column(column, overflow="fold")
    table.add_column("text")
    for summary in found:
        ticket = summary.ticket
        table.add_row(
            str(ticket.id),
            ticket.channel,
            ticket.ts,
            ticket.status,
            str(ticket.attempts),
            as_utc(ticket.updated_at).strftime("%Y-%m-%d %H:%M"),
            summary.label or "-",
            Text(_preview(ticket.text)),  # Text: the ticket's own brackets are not markup
        )
    stdout.print(table)


def _ticket_ids(raw: list[str]) -> list[int]:
    ids = []
    for value in raw:
        cleaned = value.strip().lstrip("#")
        if not cleaned.isdigit() or int(cleaned) == 0:
            fail(
                f"{value!r} is not a ticket id; ids are whole numbers, as "
                "`triage tickets list --status failed` shows them."
            )
        ids.append(int(cleaned))
    return ids


def _print_outcome(outcome: RetryOutcome, every_failed: bool) -> None:
    count = len(outcome.requeued)
    if count:
        listed = ", ".join(f"#{ticket_id}" for ticket_id in outcome.requeued)
        noun, them = ("ticket", "it") if count == 1 else ("tickets", "them")
        stdout.print(
            f"Requeued {count} {noun}: {listed}. A running bot routes {them} within "
            "seconds; a stopped one at its next start.",
            highlight=False,
            soft_wrap=True,
        )
    elif every_failed:
        stdout.print("No failed tickets to retry.", highlight=False)
    else:
        stdout.print("Requeued 0 tickets.", highlight=False)
    for refusal in outcome.refused:
        stderr.print(
            f"#{refusal.ticket_id} not requeued: {refusal.reason}.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def retry_command(
    ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="ID", help="Ids of failed tickets.", show_default=False),
    ] = None,
    every_failed: Annotated[
        bool, typer.Option("--failed", help="Retry every failed ticket.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Hand failed tickets back to the bot, once their cause is fixed (e.g. the bot was
    invited to a department's channel). A running bot routes them within seconds, on one
    replica, once; a stopped one at its next start. Exit code 1 when some ids were not failed
    tickets (the others are requeued all the same)."""
    if ids and every_failed:
        fail("give ticket ids or --failed, not both.")
    if not ids and not every_failed:
        fail("give the ids of the tickets to retry, or --failed for every failed ticket.")
    wanted = None if every_failed else _ticket_ids(ids or [])

    async def body(ctx: AdminContext) -> RetryOutcome:
        return await tickets.retry_tickets(ctx.db, wanted, cli_user())

    outcome = run_with_context(body)
    if as_json:
        refused = [{"id": r.ticket_id, "reason": r.reason} for r in outcome.refused]
        typer.echo(json.dumps({"requeued": list(outcome.requeued), "refused": refused}))
    else:
        _print_outcome(outcome, every_failed)
    if outcome.refused:
        raise typer.Exit(code=1)
