"""``triage retrain``: the same retrain job as /retrain, with progress bars in the terminal."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from admin.cli.jobs_runtime import cli_user, run_with_context
from admin.cli.terminal import fail, progress_bar, stdout
from admin.context import AdminContext
from admin.retrain import (
    RetrainOutcome,
    RetrainRequest,
    RetrainStatus,
    cancel_retrain,
    resume_orphaned_retrains,
    retrain,
)


def print_outcome(outcome: RetrainOutcome) -> None:
    """The result of a retrain: counts, scores on the holdout and the decision."""
    if outcome.counts:
        counts = outcome.counts
        stdout.print(
            f"Training data: {counts['train']} examples "
            f"({', '.join(f'{k} {v}' for k, v in counts['by_label'].items())}); "
            f"sources: {', '.join(f'{k} {v}' for k, v in counts['by_source'].items())}; "
            f"holdout {counts['holdout']}.",
            highlight=False,
        )
    if outcome.evaluations:
        table = Table(title="On the holdout")
        for column in ("model", "id", "accuracy", "macro-F1"):
            table.add_column(column)
        for evaluation in outcome.evaluations:
            score = evaluation.result.score
            table.add_row(
                evaluation.role,
                evaluation.model_id,
                f"{score.accuracy:.1%}",
                f"{score.macro_f1:.3f}",
            )
        stdout.print(table)
    for role, comparison in outcome.comparisons.items():
        p_value = comparison.get("p_value")
        if isinstance(p_value, float):
            stdout.print(f"Candidate vs {role}: McNemar p = {p_value:.3g}", highlight=False)
    stdout.print(f"[bold]{outcome.status}[/]: {outcome.message}", highlight=False)


def retrain_command(
    learner: str = typer.Argument(
        "local", help="local (default), openai, openai-finetune, or a learner name."
    ),
    generate: int = typer.Option(0, "--generate", min=0, help="Synthetic examples to add."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Train and evaluate, do not promote."),
    cancel: bool = typer.Option(False, "--cancel", help="Stop the running retrain instead."),
    resume: bool = typer.Option(
        False, "--resume", help="Resume a retrain whose process died (after its lease expired)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Retrain from starter + generated data + every correction; promote only if not worse."""

    async def body(ctx: AdminContext) -> None:
        if cancel:
            job = await cancel_retrain(ctx)
            if job is None:
                fail("No retrain is running.")
            stdout.print(f"Asked retrain job #{job.id} to stop.")
            return
        with progress_bar(progress) as report:
            if resume:
                tasks = await resume_orphaned_retrains(ctx, lambda _job: report)
                if not tasks:
                    fail("No orphaned retrain to resume.")
                for outcome in await asyncio.gather(*tasks):
                    print_outcome(outcome)
                return
            request = RetrainRequest(
                learner=learner, generate=generate, dry_run=dry_run, requested_by=cli_user()
            )
            outcome = await retrain(ctx, request, report)
        print_outcome(outcome)
        if outcome.status in (RetrainStatus.FAILED, RetrainStatus.CANCELLED):
            raise typer.Exit(code=1)

    run_with_context(body)
