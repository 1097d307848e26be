"""The evaluation report: how good is a model, compared with what, and how it does live.

The model (the active one unless asked otherwise) is scored on today's holdout, as are the
previous model and the prompted baseline, with the paired test for each comparison (the
seed's "baseline 73 % -> fine-tuned 100 %", on a real holdout). Live figures come from the
tickets of the last ``days`` days. ``render_report`` gives the text the bot posts and the
terminal prints; ``confusion_png`` the picture the bot uploads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from admin.context import AdminContext
from admin.errors import AdminError
from admin.scoring import HoldoutResult, compare_on_holdout, score_on_holdout
from admin.training_data import assemble_training_data, read_starter
from admin.triage_threshold import fitted_threshold
from classifier.confusion_png import confusion_png
from classifier.learning_curve_png import learning_curve_png
from classifier.protocols import ProgressCallback, ProgressEvent, no_progress
from data.db import model_registry as registry
from data.db.admin_actions import record_action
from data.db.database import utcnow
from data.db.learning_curve import model_accuracies, weekly_correction_rates
from data.db.model_registry import StoredModel
from data.db.stats import LiveFigures, live_figures
from data.db.training_set import list_training_examples


@dataclass(frozen=True)
class Comparison:
    """Another model on the same holdout, paired with the reported one."""

    role: str  # previous | baseline
    model_id: str
    result: HoldoutResult
    #: compare_on_holdout(reported, other): "only_a_right" = tickets only the reported got right.
    paired: dict[str, Any]


@dataclass(frozen=True)
class ModelReport:
    """Everything /evalreport shows."""

    model: StoredModel
    result: HoldoutResult
    holdout_size: int
    comparisons: tuple[Comparison, ...]
    live: LiveFigures
    labels: tuple[str, ...]
    #: The learning curve: (registry id, holdout accuracy) per model that was active, and
    #: (ISO week, share of tickets corrected), both oldest first.
    versions: tuple[tuple[int, float], ...] = ()
    weeks: tuple[tuple[str, float], ...] = ()

    def learning_curve_png(self) -> bytes:
        """Holdout accuracy per model version and corrections per week, as a PNG."""
        return learning_curve_png(
            [(f"#{registry_id}", accuracy) for registry_id, accuracy in self.versions],
            list(self.weeks),
        )

    def confusion_png(self) -> bytes:
        """The confusion matrix on the holdout as a PNG."""
        return confusion_png(
            self.result.report.confusion,
            title=f"Model #{self.model.id} on {self.holdout_size} held-out tickets",
        )


def parse_model_ref(text: str) -> int:
    """A registry id from "7" or "#7"; AdminError otherwise."""
    cleaned = text.strip().lstrip("#")
    if not cleaned.isdigit():
        raise AdminError(f"{text!r} is not a model number; `triage models list` shows them.")
    return int(cleaned)


async def build_report(
    ctx: AdminContext,
    model: int | None = None,
    *,
    days: int | None = None,
    requested_by: str = "cli",
    progress: ProgressCallback = no_progress,
) -> ModelReport:
    """Score ``model`` (default: the active one) and gather the live figures."""
    days = days or ctx.settings.report_days
    threshold = ctx.settings.confidence_threshold
    if ctx.settings.adaptive_threshold:  # the share sent to triage at the fitted threshold
        threshold, _ = await fitted_threshold(
            ctx.db, ctx.clock, fallback=threshold, target=ctx.settings.triage_target
        )
    async with ctx.db.transaction() as conn:
        entry = await registry.get_active_model(conn) if model is None else await _get(conn, model)
        if entry is None:
            raise AdminError("There is no active model yet; run /retrain first.")
        artefact = await registry.get_artefact(conn, entry.id)
        previous = await registry.previous_model(conn)
        if previous is not None and previous.id == entry.id:
            previous = None
        previous_artefact = (
            await registry.get_artefact(conn, previous.id) if previous is not None else None
        )
        stored = await list_training_examples(
            conn, now=ctx.clock.now(), holdout_cap=ctx.settings.holdout_cap
        )
        now = utcnow()
        live = await live_figures(
            conn,
            since=now - timedelta(days=days),
            until=now,
            threshold=threshold,
            labels=ctx.taxonomy.labels,
        )
        versions = await model_accuracies(conn)
        weeks = await weekly_correction_rates(conn, now)

    progress(ProgressEvent("evaluate", "assembling the holdout", 0.0))
    data = assemble_training_data(
        ctx.taxonomy,
        starter_train=[],
        starter_test=read_starter(ctx.starter_test),
        stored=stored,
    )
    if not data.holdout:
        raise AdminError(no_holdout_message(entry))
    labels = ctx.taxonomy.labels
    classifier = ctx.load_model(artefact)
    result = await score_on_holdout(classifier, data.holdout, labels)
    comparisons: list[Comparison] = []
    others: list[tuple[str, Any]] = []
    if previous_artefact is not None:
        others.append(("previous", ctx.load_model(previous_artefact)))
    baseline = ctx.baseline()
    if baseline is not None:
        others.append(("baseline", baseline))
    for index, (role, other) in enumerate(others, start=1):
        progress(ProgressEvent("evaluate", f"scoring the {role} model", index / (len(others) + 1)))
        other_result = await score_on_holdout(other, data.holdout, labels)
        comparisons.append(
            Comparison(
                role,
                other.model_id,
                other_result,
                compare_on_holdout(result, other_result, data.holdout),
            )
        )
    progress(ProgressEvent("evaluate", "done", 1.0))
    async with ctx.db.transaction() as conn:
        await record_action(
            conn,
            user=requested_by,
            action="evalreport",
            outcome="done",
            detail={"model": entry.id, "days": days},
        )
    return ModelReport(
        model=entry,
        result=result,
        holdout_size=len(data.holdout),
        comparisons=tuple(comparisons),
        live=live,
        labels=labels,
        versions=tuple(versions),
        weeks=tuple(weeks),
    )


def no_holdout_message(entry: StoredModel) -> str:
    """What /evalreport says when no held-out ticket exists: how the model was evaluated when
    it was trained (cross-validation, see ``admin.taxonomy_training``), if it was."""
    message = (
        "There are no held-out tickets for these departments yet: import labelled history "
        "(`triage import`) or let agents correct tickets, and a fifth of them will be held out."
    )
    how = entry.metrics.get("evaluation")
    scores = entry.metrics.get("holdout")
    if isinstance(how, str) and isinstance(scores, dict):
        low, high = scores.get("accuracy_ci", (0.0, 0.0))
        message += (
            f" When it was trained, model #{entry.id} was evaluated by {how}: accuracy "
            f"{_pct(float(scores.get('accuracy', 0.0)))} (95 % CI {_pct(float(low))}–"
            f"{_pct(float(high))}), macro-F1 {float(scores.get('macro_f1', 0.0)):.3f}."
        )
    return message


async def _get(conn: Any, registry_id: int) -> StoredModel:
    try:
        return await registry.get_model(conn, registry_id)
    except registry.ModelNotFoundError:
        raise AdminError(
            f"There is no model #{registry_id}; `triage models list` shows them."
        ) from None


def _pct(value: float) -> str:
    return f"{value:.1%}"


def render_report(report: ModelReport) -> str:
    """The report as text: headline, per-department table, comparisons, live figures."""
    r = report.result.report
    low, high = r.accuracy_ci
    lines = [
        f"*Model #{report.model.id}* `{report.model.model_id}` ({report.model.learner}, "
        f"{report.model.status}) on {report.holdout_size} held-out tickets",
        f"Accuracy *{_pct(r.accuracy)}* (95 % CI {_pct(low)}–{_pct(high)}), "
        f"macro-F1 *{r.macro_f1:.3f}*",
    ]
    table = [f"{'department':<14}{'precision':>10}{'recall':>8}{'F1':>7}{'n':>6}"]
    for label in report.labels:
        scores = r.per_label.get(label)
        if scores is None:
            continue
        table.append(
            f"{label[:14]:<14}{scores.precision:>10.2f}{scores.recall:>8.2f}"
            f"{scores.f1:>7.2f}{scores.support:>6}"
        )
    lines.append("```\n" + "\n".join(table) + "\n```")
    for comparison in report.comparisons:
        other = comparison.result.report
        paired = comparison.paired
        name = "Prompted baseline" if comparison.role == "baseline" else "Previous model"
        lines.append(
            f"{name} `{comparison.model_id}` {_pct(other.accuracy)} → this model "
            f"{_pct(r.accuracy)} (macro-F1 {other.macro_f1:.3f} → {r.macro_f1:.3f}); "
            f"only this one right on {paired['only_a_right']}, only the {comparison.role} on "
            f"{paired['only_b_right']}; McNemar p = {paired['p_value']:.3g}"
        )
    live = report.live
    days = max(1, round((live.until - live.since).total_seconds() / 86400))
    lines.append(
        f"*Live, last {days} days:* {live.tickets} tickets, {live.routed} routed, "
        f"{live.corrected} corrected ({_pct(live.correction_rate)}); "
        f"{_pct(live.below_threshold_share)} below the {live.threshold:.0%} confidence threshold"
    )
    per_dept = [
        f"{d.label} {d.corrected}/{d.predicted} ({_pct(d.correction_rate)})"
        for d in live.departments
        if d.predicted
    ]
    if per_dept:
        lines.append("Corrected per department: " + ", ".join(per_dept))
    if live.confusions:
        lines.append(
            "Most often moved: "
            + ", ".join(f"{bot} → {person} ({n})" for bot, person, n in live.confusions)
        )
    return "\n".join(lines)
