"""``triage models``: list the registry, activate a model, roll back (no retraining)."""

from __future__ import annotations

import typer
from rich.table import Table

from admin import registry
from admin.cli.jobs_runtime import cli_user, run_with_context
from admin.cli.terminal import stdout
from admin.context import AdminContext


def list_command(limit: int = typer.Option(20, help="How many models to show.")) -> None:
    """The newest models with their learner, data, macro-F1 and status."""

    async def body(ctx: AdminContext) -> None:
        entries = await registry.list_models(ctx, limit)
        table = Table(title="Models (newest first)")
        for column in ("id", "status", "learner", "model", "examples", "macro-F1", "by", "created"):
            table.add_column(column)
        for m in entries:
            holdout = m.metrics.get("holdout", {})
            f1 = holdout.get("macro_f1")
            table.add_row(
                str(m.id),
                m.status,
                m.learner,
                m.model_id,
                str(m.counts.get("train", "")),
                f"{f1:.3f}" if isinstance(f1, float) else "",
                m.created_by or "",
                m.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        stdout.print(table)

    run_with_context(body)


def activate_command(
    model_id: int = typer.Argument(..., help="The registry id to activate."),
) -> None:
    """Make a stored model the active one; running bots pick it up within seconds."""

    async def body(ctx: AdminContext) -> None:
        entry = await registry.activate(ctx, model_id, cli_user())
        stdout.print(f"Model #{entry.id} ({entry.model_id}) is now active.")

    run_with_context(body)


def rollback_command() -> None:
    """Switch back to the model that was active before the current one."""

    async def body(ctx: AdminContext) -> None:
        entry = await registry.rollback(ctx, cli_user())
        stdout.print(f"Rolled back: model #{entry.id} ({entry.model_id}) is active again.")

    run_with_context(body)
