"""``triage report``: the same evaluation report as /evalreport, in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from admin.cli.jobs_runtime import cli_user, run_with_context
from admin.cli.terminal import progress_bar, stdout
from admin.context import AdminContext
from admin.report import ModelReport, build_report, parse_model_ref, render_report


def report_command(
    model: str = typer.Argument("", help="A model number (default: the active model)."),
    days: int = typer.Option(0, "--days", min=0, help="Days of live figures (default: setting)."),
    png: Annotated[
        Path | None, typer.Option("--png", help="Write the confusion matrix PNG here.")
    ] = None,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """How good the model is on the holdout, against the previous model and the baseline, and
    how it does on live tickets."""

    async def body(ctx: AdminContext) -> ModelReport:
        with progress_bar(progress) as report_progress:
            return await build_report(
                ctx,
                parse_model_ref(model) if model else None,
                days=days or None,
                requested_by=cli_user(),
                progress=report_progress,
            )

    report = run_with_context(body)
    stdout.print(render_report(report), markup=False, highlight=False)
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(report.confusion_png())
        stdout.print(f"Confusion matrix written to {png}", highlight=False)
