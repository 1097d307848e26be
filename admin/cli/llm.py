"""``triage generate`` and ``triage finetune``: the seed's LLM pipeline from the terminal.

    triage generate                      50 train / 15 test synthetic tickets (seed's split)
    triage finetune start --data F...    validate, upload, create the job, follow it
    triage finetune resume [JOB]         follow a job again (after Ctrl-C, a crash, a restart)
    triage finetune status [JOB]         one look at the job
    triage finetune cancel [JOB]         cancel it
    triage finetune export --data F...   write the exact training file, upload nothing

The job id is written to a state file (``--state``) the moment the job exists, so ``resume``,
``status`` and ``cancel`` work without typing it, from any later process.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from admin.cli.terminal import fail, progress_bar, run, settings, stderr, stdout, taxonomy
from admin.llm import openai_config
from classifier.errors import ClassifierError
from classifier.examples import Example, read_datasets
from classifier.llm.client import OpenAIClient
from classifier.llm.finetune import (
    FineTuner,
    FineTuneResult,
    build_training_file,
)
from classifier.llm.pricing import summarise_usage
from classifier.llm.synthetic import (
    TEST_TOTAL,
    TRAIN_TOTAL,
    generate_examples,
    per_label_counts,
    split_per_label,
    write_generated,
)
from classifier.protocols import Prediction
from classifier.taxonomy import Taxonomy

DEFAULT_STATE = Path("out/finetune-state.json")
DEFAULT_TRAIN_OUT = Path("data/generated/train.jsonl")
DEFAULT_TEST_OUT = Path("data/generated/test.jsonl")
DEFAULT_EXPORT = Path("out/finetune-train.jsonl")

DataOption = Annotated[
    list[Path] | None, typer.Option("--data", help="Labelled datasets (JSONL), repeatable.")
]
StateOption = Annotated[Path, typer.Option(help="Where the job id is recorded.")]
MaxWaitOption = Annotated[
    float | None, typer.Option(help="Stop following after this many seconds (resumable).")
]
JobArgument = Annotated[
    str | None, typer.Argument(help="Job id (default: the one recorded in --state).")
]


def open_client() -> OpenAIClient:
    """The configured client, or a clear exit when there is no key."""
    config = openai_config(settings())
    if not config.api_key:
        fail(
            "This command calls an OpenAI-compatible API and OPENAI_API_KEY is not set; set it "
            "(and OPENAI_BASE_URL for another provider), or use the local learners offline."
        )
    return OpenAIClient(config)


# ---------------------------------------------------------------------------- generate


def generate(
    train_out: Annotated[Path, typer.Option(help="Training file.")] = DEFAULT_TRAIN_OUT,
    test_out: Annotated[Path, typer.Option(help="Test file.")] = DEFAULT_TEST_OUT,
    train_total: Annotated[int, typer.Option(min=1, help="Training tickets in all.")] = TRAIN_TOTAL,
    test_total: Annotated[int, typer.Option(min=0, help="Test tickets in all.")] = TEST_TOTAL,
    existing: Annotated[
        list[Path] | None,
        typer.Option("--existing", help="Datasets the new tickets must not duplicate."),
    ] = None,
    language: Annotated[
        list[str] | None,
        typer.Option(
            "--language", help="Languages to write in (default: TRIAGE_GENERATE_LANGUAGES)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Chat model (default: TRIAGE_OPENAI_MODEL).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the briefs, the model and the split.")] = 0,
) -> None:
    """Generate synthetic tickets per department and write them in the seed's chat format."""
    config = settings()
    departments = taxonomy(config)
    known = read_datasets(existing) if existing else []
    client = open_client()
    train_per, test_per = per_label_counts(len(departments), train_total, test_total)
    with progress_bar() as progress:
        report = run(
            _generate(
                client,
                departments,
                train_per + test_per,
                seed=seed,
                existing=known,
                languages=tuple(language or ()) or config.generate_languages,
                model=model,
                progress=progress,
            )
        )
    train, test = split_per_label(report.examples, test_per, seed=seed)
    write_generated(train_out, train, departments.labels)
    if test_total:
        write_generated(test_out, test, departments.labels)
    table = Table(title="Generated tickets")
    for column in ("department", "train", "test"):
        table.add_column(column)
    for label in departments.labels:
        table.add_row(
            label,
            str(sum(e.label == label for e in train)),
            str(sum(e.label == label for e in test)),
        )
    stdout.print(table)
    stdout.print(
        f"wrote {len(train)} to {train_out}"
        + (f" and {len(test)} to {test_out}" if test_total else ""),
        highlight=False,
    )
    rejected = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.rejected.items())
    stdout.print(f"rejected: {rejected}", highlight=False)
    stdout.print(
        f"{report.calls} calls, {report.prompt_tokens} prompt + {report.completion_tokens} "
        "completion tokens",
        highlight=False,
    )
    if report.shortfall:
        short = ", ".join(f"{k} {v}" for k, v in report.shortfall.items())
        stderr.print(f"[yellow]warning:[/] fewer tickets than asked for: {short}", highlight=False)


async def _generate(client: OpenAIClient, departments: Taxonomy, per_label: int, **kw: Any) -> Any:
    async with client:
        return await generate_examples(client, departments, per_label, **kw)


# ---------------------------------------------------------------------------- finetune


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError):
        fail(f"{path} is not a fine-tuning state file; pass the job id instead.")
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, **values: Any) -> None:
    state = _read_state(path)
    state.update(values, updated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a state file


def _job_id(job_id: str | None, state_path: Path) -> str:
    found = job_id or _read_state(state_path).get("job_id")
    if not isinstance(found, str) or not found:
        fail(f"No job id given and none recorded in {state_path}; pass JOB_ID.")
    return found


def _training_examples(data: list[Path] | None) -> list[Example]:
    if not data:
        fail("Give at least one dataset with --data.")
    return read_datasets(data)


def _on_job(job_id: str, action: Callable[[FineTuner, str], Awaitable[Any]]) -> Any:
    """Run one FineTuner call (status, cancel) on ``job_id`` with a client opened for it."""
    client = open_client()

    async def call() -> Any:
        async with client:
            return await action(_tuner(client, None), job_id)

    return run(call())


def _tuner(client: OpenAIClient, base_model: str | None) -> FineTuner:
    return FineTuner(
        client, base_model=base_model, poll_interval=settings().openai_finetune_poll_seconds
    )


def _follow(job_id: str, state_path: Path, max_wait: float | None) -> None:
    client = open_client()

    async def follow() -> FineTuneResult:
        async with client:
            with progress_bar() as progress:
                return await _tuner(client, None).follow(
                    job_id, progress=progress, max_wait=max_wait
                )

    try:
        result = run(follow())
    except KeyboardInterrupt:
        stderr.print(
            f"Stopped following; job {job_id} goes on. Resume with: triage finetune resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    except ClassifierError as exc:
        _write_state(state_path, job_id=job_id, last_error=str(exc))
        raise
    _write_state(
        state_path,
        job_id=job_id,
        status="succeeded",
        fine_tuned_model=result.fine_tuned_model,
        trained_tokens=result.trained_tokens,
    )
    stdout.print(f"fine-tuned model: {result.fine_tuned_model}", highlight=False)
    if result.trained_tokens:
        stdout.print(f"trained tokens: {result.trained_tokens}", highlight=False)
    stdout.print(
        f"evaluate it: triage evaluate --model {result.fine_tuned_model} --test TEST.jsonl",
        highlight=False,
    )


def finetune_export(
    data: DataOption = None,
    out: Annotated[Path, typer.Option(help="Where to write the training file.")] = DEFAULT_EXPORT,
) -> None:
    """Validate the data and write the exact file ``start`` would upload."""
    departments = taxonomy(settings())
    training = build_training_file(_training_examples(data), departments.labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(training.data)
    for warning in training.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    stdout.print(
        f"wrote {len(training.examples)} examples (~{training.approx_tokens} tokens, sha256 "
        f"{training.sha256[:12]}) to {out}",
        highlight=False,
    )


def finetune_start(
    data: DataOption = None,
    base_model: Annotated[
        str | None,
        typer.Option(help="Model to fine-tune (default: TRIAGE_OPENAI_FINETUNE_BASE_MODEL)."),
    ] = None,
    suffix: Annotated[str, typer.Option(help="Suffix in the fine-tuned model's name.")] = "triage",
    seed: Annotated[int, typer.Option(help="The job's seed.")] = 0,
    state: StateOption = DEFAULT_STATE,
    follow: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    max_wait: MaxWaitOption = None,
) -> None:
    """Validate, upload and start a fine-tuning job (reusing an identical one), then follow it."""
    config = settings()
    departments = taxonomy(config)
    training = build_training_file(_training_examples(data), departments.labels)
    for warning in training.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    client = open_client()

    async def start() -> tuple[str, str]:
        async with client:
            tuner = _tuner(client, base_model)
            with progress_bar() as progress:
                job_id = await tuner.start(training, suffix=suffix, seed=seed, progress=progress)
            return job_id, tuner.base_model

    job_id, model = run(start())
    _write_state(
        state,
        job_id=job_id,
        base_model=model,
        labels=list(departments.labels),
        dataset_sha256=training.sha256,
        examples=len(training.examples),
    )
    stdout.print(f"job {job_id} (recorded in {state})", highlight=False)
    if follow:
        _follow(job_id, state, max_wait)


def finetune_resume(
    job_id: JobArgument = None,
    state: StateOption = DEFAULT_STATE,
    max_wait: MaxWaitOption = None,
) -> None:
    """Follow a job again, e.g. after Ctrl-C or a restart; it never starts a new one."""
    _follow(_job_id(job_id, state), state, max_wait)


def finetune_status(
    job_id: JobArgument = None,
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Show the job's status, fine-tuned model and trained tokens."""
    target = _job_id(job_id, state)
    status = _on_job(target, FineTuner.status)
    stdout.print(f"{status.job_id}: {status.status}", highlight=False)
    for name in ("base_model", "fine_tuned_model", "trained_tokens", "error"):
        value = getattr(status, name)
        if value:
            stdout.print(f"  {name.replace('_', ' ')}: {value}", highlight=False)


def finetune_cancel(
    job_id: JobArgument = None,
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Cancel the job (a job that already ended is left as it is)."""
    target = _job_id(job_id, state)
    status = _on_job(target, FineTuner.cancel)
    _write_state(state, job_id=target, status=status.status)
    stdout.print(f"{status.job_id}: {status.status}", highlight=False)


# ---------------------------------------------------------------------------- usage in reports


def usage_report(predictions: Sequence[Prediction], model_id: str) -> dict[str, Any] | None:
    """Tokens per call and the estimated cost per 1,000 tickets, for LLM-backed models only."""
    # model_id is "openai:<model>:<hash>" for the prompted learner, the model name otherwise.
    model = model_id.split(":")[1] if model_id.startswith("openai:") else model_id
    summary = summarise_usage(predictions, model, openai_config(settings()).prices)
    if not summary.calls:
        return None
    return {
        "calls": summary.calls,
        "prompt_tokens_per_call": round(summary.prompt_tokens_per_call, 1),
        "completion_tokens_per_call": round(summary.completion_tokens_per_call, 1),
        "cost_per_1000_tickets_usd": summary.cost_per_1000_usd,
    }


def print_usage(predictions: Sequence[Prediction], model_id: str) -> None:
    """One line under an evaluation table when the model called an LLM."""
    usage = usage_report(predictions, model_id)
    if usage is None:
        return
    cost = usage["cost_per_1000_tickets_usd"]
    shown = f"${cost:.4f}" if cost is not None else "unknown (add it to TRIAGE_OPENAI_PRICES)"
    stdout.print(
        f"{model_id}: {usage['prompt_tokens_per_call']} prompt + "
        f"{usage['completion_tokens_per_call']} completion tokens per ticket; est. cost per "
        f"1,000 tickets {shown}",
        highlight=False,
    )
