"""``triage train``, ``evaluate``, ``classify`` and ``learners``: local models from the terminal.

Every command goes through the learner registry and ``classifier.artifacts.load_model``, so the
LLM learners work here as soon as they are installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from admin.cli.llm import print_usage, usage_report
from admin.cli.terminal import fail, progress_bar, run, settings, stderr, stdout
from admin.cli.terminal import taxonomy as configured_taxonomy
from admin.errors import AdminError
from admin.learner_setup import (
    LoadedModel,
    align_labels,
    auto_learner_name,
    learner_context,
    learner_statuses,
    load_model_reference,
    taxonomy_learner,
    training_labels,
)
from classifier.confusion_png import confusion_png
from classifier.evaluation import (
    EvalReport,
    Evaluation,
    PairedComparison,
    compare_predictions,
    evaluate_classifier,
)
from classifier.examples import Example, read_datasets
from classifier.learners import LEARNERS, LearnerContext, get_learner
from classifier.protocols import TrainedModel
from classifier.taxonomy import Taxonomy, load_taxonomy
from data import STARTER_TRAIN


@dataclass(frozen=True)
class TrainedRun:
    """A model trained in this process, with its facts."""

    model: TrainedModel
    n_train: int
    train_seconds: float


def _train(
    learner_name: str,
    examples: Sequence[Example],
    taxonomy: Taxonomy | None,
    context: LearnerContext,
    seed: int,
) -> TrainedRun:
    learner = get_learner(learner_name, context)
    labels = training_labels(examples, taxonomy)
    examples = align_labels(examples, labels)
    start = time.perf_counter()
    with progress_bar() as progress:
        model = run(
            learner.train(examples, labels, seed=seed, progress=progress), closing=context.openai
        )
    missing = [label for label in labels if label not in model.labels]
    if missing:
        stderr.print(
            f"note: no training examples for {', '.join(missing)}; the model cannot predict them.",
            highlight=False,
            soft_wrap=True,
        )
    return TrainedRun(model, len(examples), time.perf_counter() - start)


def _train_from_taxonomy(
    learner_name: str,
    examples: Sequence[Example],
    taxonomy: Taxonomy,
    context: LearnerContext,
    seed: int,
    unlabelled: Sequence[str],
) -> TrainedRun:
    learner = taxonomy_learner(learner_name, context, taxonomy, unlabelled=unlabelled)
    start = time.perf_counter()
    with progress_bar() as progress:
        model = run(learner.train(examples, taxonomy.labels, seed=seed, progress=progress))
    return TrainedRun(model, len(examples), time.perf_counter() - start)


def _in_taxonomy(examples: Sequence[Example], taxonomy: Taxonomy, path: Path) -> list[Example]:
    """``examples`` with labels spelt as the taxonomy does; AdminError naming unknown labels."""
    unknown = sorted({e.label for e in examples if e.label not in taxonomy})
    if unknown:
        shown = ", ".join(repr(label) for label in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise AdminError(
            f"{path}: label(s) {shown}{more} are not departments of the taxonomy "
            f"({len(taxonomy)} departments)."
        )
    return [Example(e.text, taxonomy.canonical(e.label), e.source) for e in examples]


def _read_texts(path: Path) -> list[str]:
    """Ticket texts from a JSONL file of ``{"text": ...}`` lines (labels, if any, ignored)."""
    texts: list[str] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    raise AdminError(f"{path}:{number}: not a JSON object with 'text'.") from None
                if isinstance(text, str) and text.strip():
                    texts.append(text)
    except OSError as exc:
        raise AdminError(f"{path}: cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise AdminError(f"{path}: not valid UTF-8 text.") from None
    return texts


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise AdminError(f"{path}: cannot be written ({exc.strerror}).") from None


def train(
    data: Annotated[list[Path], typer.Option("--data", help="Training JSONL file(s).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the model file.")],
    learner: Annotated[
        str, typer.Option("--learner", help="auto or a name from `triage learners`.")
    ] = "auto",
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed (default: TRIAGE_SEED).")
    ] = None,
) -> None:
    """Train a model on labelled tickets and write it to a file."""
    config = settings()
    departments = configured_taxonomy(config)
    context = learner_context(config, departments)
    examples = read_datasets(data)
    trained = _train(learner, examples, departments, context, config.seed if seed is None else seed)
    _write(out, trained.model.to_bytes())
    table = Table(title="Trained", show_header=False)
    table.add_row("model", trained.model.model_id)
    table.add_row("learner", trained.model.learner)
    table.add_row("examples", str(trained.n_train))
    table.add_row("labels", ", ".join(trained.model.labels))
    table.add_row("seconds", f"{trained.train_seconds:.1f}")
    table.add_row("file", str(out))
    stdout.print(table)


def _is_learner_name(value: str) -> bool:
    return value == "auto" or value in LEARNERS


def _report_table(report: EvalReport) -> Table:
    low, high = report.accuracy_ci
    table = Table(
        title=f"{report.model_id}: accuracy {report.accuracy:.1%} (95% CI {low:.1%}-{high:.1%}), "
        f"macro-F1 {report.macro_f1:.3f}, {report.n_test} test tickets"
    )
    for column in ("label", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, scores in report.per_label.items():
        table.add_row(
            label,
            f"{scores.precision:.3f}",
            f"{scores.recall:.3f}",
            f"{scores.f1:.3f}",
            str(scores.support),
        )
    return table


def _confusion_table(report: EvalReport) -> Table:
    labels = report.confusion.labels
    table = Table(title="Confusion matrix (rows: true department, columns: predicted)")
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(label, justify="right")
    for i, (label, row) in enumerate(zip(labels, report.confusion.matrix, strict=True)):
        cells = [str(count) if count else "." for count in row]
        if row[i]:
            cells[i] = f"[bold]{row[i]}[/]"
        table.add_row(label, *cells)
    return table


def _comparison_table(comparison: PairedComparison) -> Table:
    table = Table(title="Paired comparison on the same test tickets (exact McNemar test)")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row(f"A = {comparison.model_a}", f"{comparison.accuracy_a:.1%}")
    table.add_row(f"B = {comparison.model_b}", f"{comparison.accuracy_b:.1%}")
    table.add_row("both right", str(comparison.both_right))
    table.add_row("only A right", str(comparison.only_a_right))
    table.add_row("only B right", str(comparison.only_b_right))
    table.add_row("both wrong", str(comparison.both_wrong))
    table.add_row("accuracy A - B", f"{comparison.accuracy_difference:+.1%}")
    table.add_row("p-value", f"{comparison.p_value:.4g}")
    return table


def _evaluate(loaded: LoadedModel, test: Sequence[Example], context: LearnerContext) -> Evaluation:
    with progress_bar() as progress:
        return run(
            evaluate_classifier(
                loaded.model,
                align_labels(test, loaded.model.labels),
                n_train=loaded.n_train,
                train_seconds=loaded.train_seconds,
                progress=progress,
            ),
            closing=context.openai,
        )


def evaluate(
    test: Annotated[Path, typer.Option("--test", help="Test JSONL file.")],
    model: Annotated[
        str | None, typer.Option("--model", help="A model file (or ft:... name).")
    ] = None,
    train_files: Annotated[
        list[Path] | None,
        typer.Option("--train", help="Train on these files first instead of loading --model."),
    ] = None,
    learner: Annotated[str, typer.Option("--learner", help="The learner for --train.")] = "auto",
    compare: Annotated[
        str | None,
        typer.Option("--compare", help="A second model file or learner name to compare against."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    png: Annotated[
        Path | None, typer.Option("--png", help="Write the confusion matrix here.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed (default: TRIAGE_SEED).")
    ] = None,
    taxonomy_file: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="Train from this taxonomy (descriptions, keywords, examples) plus --train "
            "if given; its departments are the label set.",
        ),
    ] = None,
    unlabelled_file: Annotated[
        Path | None,
        typer.Option(
            "--unlabelled",
            help="With --taxonomy: JSONL of tickets seen but not labelled, for self-training.",
        ),
    ] = None,
) -> None:
    """Evaluate a model on a test file: accuracy with its interval, per-label scores, confusions."""
    if model is None and not train_files and taxonomy_file is None:
        fail("give --model PATH, --train FILE, or --taxonomy FILE to train a model first.")
    config = settings()
    from_taxonomy = None if taxonomy_file is None else load_taxonomy(taxonomy_file)
    departments = from_taxonomy or configured_taxonomy(config)
    context = learner_context(config, departments)
    run_seed = config.seed if seed is None else seed
    test_examples = read_datasets([test])
    train_examples = read_datasets(train_files) if train_files else []
    unlabelled = _read_texts(unlabelled_file) if unlabelled_file is not None else []
    if from_taxonomy is not None and taxonomy_file is not None:
        test_examples = _in_taxonomy(test_examples, from_taxonomy, test)
        train_examples = [
            example
            for path in train_files or []
            for example in _in_taxonomy(read_datasets([path]), from_taxonomy, path)
        ]

    def obtain(reference: str, *, by_learner: bool) -> LoadedModel:
        if by_learner and from_taxonomy is not None:
            trained = _train_from_taxonomy(
                reference, train_examples, from_taxonomy, context, run_seed, unlabelled
            )
            return LoadedModel(trained.model, trained.n_train, trained.train_seconds)
        if by_learner:
            if not train_examples:
                raise AdminError(f"--compare {reference} trains a learner: it needs --train.")
            trained = _train(reference, train_examples, departments, context, run_seed)
            return LoadedModel(trained.model, trained.n_train, trained.train_seconds)
        return load_model_reference(reference, context)

    primary = obtain(model or learner, by_learner=model is None)
    result = _evaluate(primary, test_examples, context)
    comparison = None
    if compare is not None:
        by_learner = _is_learner_name(compare) and not Path(compare).exists()
        other = _evaluate(obtain(compare, by_learner=by_learner), test_examples, context)
        comparison = compare_predictions(
            [e.label for e in align_labels(test_examples, primary.model.labels)],
            [p.label for p in result.predictions],
            [p.label for p in other.predictions],
            model_a=result.report.model_id,
            model_b=other.report.model_id,
        )
    if png is not None:
        title = f"{result.report.model_id} on {test.name}"
        _write(png, confusion_png(result.report.confusion, title))
    if as_json:
        payload = result.report.to_dict()
        payload["usage"] = usage_report(result.predictions, result.report.model_id)
        # What the learner's validation tried and chose (learners without selection: null).
        payload["selection"] = getattr(primary.model, "selection", None)
        if comparison is not None:
            payload["comparison"] = comparison.to_dict()
            payload["compared_usage"] = usage_report(other.predictions, other.report.model_id)
        typer.echo(json.dumps(payload))
        return
    stdout.print(_report_table(result.report))
    stdout.print(_confusion_table(result.report))
    print_usage(result.predictions, result.report.model_id)
    if comparison is not None:
        stdout.print(_comparison_table(comparison))
        print_usage(other.predictions, other.report.model_id)
    if png is not None:
        stdout.print(f"confusion matrix written to {png}", highlight=False)


def classify(
    texts: Annotated[list[str], typer.Argument(help="Ticket texts to classify.")],
    model: Annotated[
        str | None, typer.Option("--model", help="A model file (or ft:... name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Classify ticket texts: department, confidence and runner-up."""
    if any(not text.strip() for text in texts):
        fail("a ticket text is empty; give the text of each ticket.")
    config = settings()
    departments = configured_taxonomy(config)
    context = learner_context(config, departments)
    if model is not None:
        classifier = load_model_reference(model, context).model
    else:
        if not STARTER_TRAIN.exists():
            raise AdminError("no --model given and no starter data is installed.")
        starter = read_datasets([STARTER_TRAIN])
        trained = _train(config.learner, starter, departments, context, config.seed)
        classifier = trained.model
        stderr.print(
            f"note: no --model given, so the {classifier.learner!r} learner was trained on "
            f"the starter data ({STARTER_TRAIN.name}, {trained.n_train} tickets).",
            highlight=False,
            soft_wrap=True,
        )
    predictions = run(classifier.predict(texts), closing=context.openai)
    if as_json:
        rows = [
            {
                "text": text,
                "label": p.label,
                "confidence": p.confidence,
                "runner_up": (
                    {"label": p.runner_ups[0][0], "confidence": p.runner_ups[0][1]}
                    if p.runner_ups
                    else None
                ),
            }
            for text, p in zip(texts, predictions, strict=True)
        ]
        typer.echo(json.dumps({"model_id": classifier.model_id, "predictions": rows}))
        return
    table = Table(title=f"Predictions of {classifier.model_id}")
    for column in ("ticket", "department", "confidence", "runner-up"):
        table.add_column(column)
    for text, p in zip(texts, predictions, strict=True):
        shown = text if len(text) <= 60 else text[:57] + "..."
        runner = f"{p.runner_ups[0][0]} ({p.runner_ups[0][1]:.0%})" if p.runner_ups else "-"
        table.add_row(shown, p.label, f"{p.confidence:.0%}", runner)
    stdout.print(table)


def learners() -> None:
    """List the learners, whether each is installed, and which one "auto" picks."""
    config = settings()
    statuses = learner_statuses(learner_context(config))
    chosen = auto_learner_name()
    table = Table(title=f'Learners ("auto" picks {chosen})')
    for column in ("name", "installed", "needs", "status"):
        table.add_column(column)
    for status in statuses:
        name = f"{status.name} (auto)" if status.name == chosen else status.name
        table.add_row(name, "yes" if status.installed else "no", status.needs, status.note)
    stdout.print(table)
