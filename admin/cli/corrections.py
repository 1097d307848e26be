"""``triage corrections``: who labelled what (``list``); undo one person's labels (``revert``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from admin import corrections
from admin.cli.jobs_runtime import cli_user, run_with_context
from admin.cli.terminal import stdout
from admin.context import AdminContext
from admin.corrections import RevertOutcome
from data.clock import as_utc
from data.db.corrections import Correction

UserOption = Annotated[str | None, typer.Option("--user", help="Only this user id (U...).")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only from this date on (2026-11-30, UTC).")
]


def _as_json(c: Correction) -> dict[str, Any]:
    return {
        "id": c.id,
        "ticket_id": c.ticket_id,
        "user": c.user,
        "from": c.from_label,
        "to": c.to_label,
        "via": c.via,
        "created_at": as_utc(c.created_at).isoformat(),
        "undone_at": as_utc(c.undone_at).isoformat() if c.undone_at else None,
    }


def list_command(
    user: UserOption = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option("--limit", help="How many to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The newest corrections: who moved which ticket from where to where, and when."""
    moment = corrections.parse_since(since)
    corrections.check_limit(limit)

    async def body(ctx: AdminContext) -> list[Correction]:
        return await corrections.list_corrections(ctx.db, user, moment, limit)

    found = run_with_context(body)
    if as_json:
        typer.echo(json.dumps({"corrections": [_as_json(c) for c in found]}))
        return
    if not found:
        stdout.print("No corrections.", highlight=False)
        return
    table = Table(title="Corrections (newest first)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("id", "ticket", "user", "from", "to", "via", "when (UTC)", "undone"):
        table.add_column(column, overflow="fold")
    for c in found:
        table.add_row(
            str(c.id),
            str(c.ticket_id),
            c.user,
            c.from_label or "-",
            c.to_label,
            c.via,
            as_utc(c.created_at).strftime("%Y-%m-%d %H:%M"),
            as_utc(c.undone_at).strftime("%Y-%m-%d %H:%M") if c.undone_at else "-",
        )
    stdout.print(table)


def revert_command(
    user: Annotated[str, typer.Option("--user", help="The user id (U...) whose labels to undo.")],
    since: SinceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Undo one person's corrections: the latest remaining human label wins again, and routed
    tickets move back. Retrain afterwards, so the model forgets those labels too."""
    moment = corrections.parse_since(since)

    async def body(ctx: AdminContext) -> RevertOutcome:
        return await corrections.revert_corrections(ctx.db, user, moment, cli_user())

    outcome = run_with_context(body)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "undone": [c.id for c in outcome.undone],
                    "tickets": list(outcome.tickets),
                    "requeued": list(outcome.requeued),
                }
            )
        )
        return
    if not outcome.undone:
        stdout.print(f"{user} has no corrections to revert.", highlight=False)
        return
    stdout.print(
        f"Reverted {len(outcome.undone)} correction(s) by {user} on {len(outcome.tickets)} "
        f"ticket(s); {len(outcome.requeued)} routed ticket(s) go back to the bot, which moves "
        "them to their remaining label within seconds. The current model still carries those "
        "labels: retrain now (triage retrain, or /retrain).",
        highlight=False,
    )
