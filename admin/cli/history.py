"""``triage import`` and ``triage export``: a team's labelled history in, the training set out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from admin.cli.jobs_runtime import run_with_context
from admin.cli.terminal import progress_bar, stderr, stdout
from admin.context import AdminContext
from admin.history import export_training_set, import_history, parse_mapping


def import_command(
    files: Annotated[
        list[Path], typer.Argument(help="JSONL (plain or chat) or CSV files with text and label.")
    ],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="Rename a label: --map old=new (repeatable)."),
    ] = None,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Store labelled tickets as training data for every later retrain (nothing is stored if
    any label is not a department)."""

    async def body(ctx: AdminContext) -> None:
        renames = parse_mapping(mapping or [])
        with progress_bar(progress) as report:
            result = await import_history(
                ctx.db, ctx.taxonomy, files, mapping=renames, progress=report
            )
        by_label = ", ".join(f"{k} {v}" for k, v in sorted(result.by_label.items()))
        stdout.print(
            f"Imported {result.stored} tickets ({by_label}); {result.held_out} of them are "
            "held out to evaluate models on. Run `triage retrain` to train on them.",
            highlight=False,
            soft_wrap=True,
        )

    run_with_context(body)


def export_command(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSONL file.")],
) -> None:
    """Write the current training set (starter, imported, generated, corrections) as JSONL."""

    async def body(ctx: AdminContext) -> None:
        written, held = await export_training_set(
            ctx.db,
            ctx.taxonomy,
            out,
            starter_train=ctx.starter_train,
            starter_test=ctx.starter_test,
        )
        stdout.print(f"Wrote {written} training examples to {out}.", highlight=False)
        stderr.print(f"note: {held} held-out tickets are not included.", highlight=False)

    run_with_context(body)
