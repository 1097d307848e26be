"""Block Kit for the admin surfaces: retrain progress, the evaluation report, the App Home."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from admin.desk_stats import DepartmentStats, DeskStats, duration
from admin.home import DeskHome, HomeSummary
from admin.report import ModelReport, render_report
from admin.tickets import RetryOutcome
from bot.admin_payloads import (
    HOME_AUTO_RETRAIN_ACTION,
    HOME_REPORT_ACTION,
    HOME_RETRAIN_ACTION,
    HOME_RETRY_FAILED_ACTION,
)
from bot.mrkdwn import SECTION_TEXT, VIEW_BLOCKS, fit_blocks, message_text, render

Blocks = list[dict[str, Any]]


def _sections(text: str) -> Blocks:
    """``text`` as mrkdwn sections, split at line ends to stay under Slack's limit."""
    blocks: Blocks = []
    chunk = ""
    for line in text.splitlines(keepends=True):
        if chunk and len(chunk) + len(line) > SECTION_TEXT - 10:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
            chunk = ""
        chunk += line
    if chunk:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    return blocks


def retrain_started(job_id: int, learner: str, user: str, dry_run: bool) -> str:
    """The parent message of a retrain's progress thread."""
    mode = " (dry run)" if dry_run else ""
    return f":gear: Retrain #{job_id} with *{learner}*{mode} started by <@{user}>."


def retrain_board_title(job_id: int, learner: str) -> str:
    """The title line of the progress board."""
    return f"Retrain #{job_id} ({learner})"


def retrain_finished(status: str, message: str) -> str:
    """The last line of the board."""
    icon = {"promoted": ":white_check_mark:", "kept": ":raised_hand:", "dry-run": ":test_tube:"}
    return f"{icon.get(status, ':x:')} *{render(status)}*: {render(message)}"


def report_message(report: ModelReport) -> tuple[str, Blocks]:
    """The evaluation report as a message (fallback text and blocks)."""
    text = render(render_report(report))
    headline = text.splitlines()[1] if len(text.splitlines()) > 1 else text
    return message_text(f"Evaluation report: {headline}"), fit_blocks(_sections(text))


def _failed_tickets(count: int) -> dict[str, Any]:
    tickets = "1 ticket" if count == 1 else f"{count} tickets"
    return {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": f":warning: *{tickets} failed to route.* Fix the cause first (the log "
            "says which; often the bot is not in a department's channel: `/invite @bot` "
            "there), then retry.",
        },
        "accessory": {
            "type": "button",
            "action_id": HOME_RETRY_FAILED_ACTION,
            "text": {"type": "plain_text", "text": "Retry"},
        },
    }


def tickets_retried(outcome: RetryOutcome) -> str:
    """The answer to the Home tab's Retry button."""
    count = len(outcome.requeued)
    if not count:
        return "No failed tickets to retry."
    if count == 1:
        return "Requeued 1 failed ticket; the bot is routing it again."
    return f"Requeued {count} failed tickets; the bot is routing them again."


def _auto_retrain_switch(on: bool | None) -> Blocks:
    """The Home tab's pause/resume button for automatic retrains (none when they are off)."""
    if on is None:
        return []
    text = "Pause automatic retrains" if on else "Resume automatic retrains"
    return [
        {
            "type": "button",
            "action_id": HOME_AUTO_RETRAIN_ACTION,
            "text": {"type": "plain_text", "text": text},
            "value": "off" if on else "on",
        }
    ]


def auto_retrain_switched(on: bool) -> str:
    """The answer to /retrain auto on|off (and the Home tab's button)."""
    if on:
        return "Automatic retrains are on: the bot retrains by itself as corrections arrive."
    return "Automatic retrains are paused for every replica; `/retrain auto on` resumes them."


def _link(ticket_id: int, permalink: str | None) -> str:
    # The permalink is Slack's, stored by the bot when it routed the ticket (never ticket text).
    return f"<{permalink}|#{ticket_id}>" if permalink else f"#{ticket_id}"


def _desk_blocks(desk: DeskHome, now: datetime) -> Blocks:
    """An agent's open tickets (oldest first); for a lead, the backlog and the figures."""
    lines = [
        f"• {_link(t.ticket_id, t.permalink)} {render(t.department)}, asked "
        f"{duration((now - t.opened_at).total_seconds())} ago"
        for t in desk.mine
    ]
    mine = "\n".join(lines) if lines else "Nothing in progress for you."
    blocks: Blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Your open tickets*\n{mine}"}}
    ]
    if desk.backlog:
        rows = []
        for b in desk.backlog:
            waiting = ", ".join(
                f"{_link(t.ticket_id, t.permalink)} "
                f"({duration((now - t.opened_at).total_seconds())})"
                for t in desk.unassigned.get(b.department, ())
            )
            oldest = f" — oldest unassigned {waiting}" if waiting else ""
            rows.append(
                f"• {render(b.department)}: {b.open} open, {b.unassigned} unassigned{oldest}"
            )
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Backlog now*\n" + "\n".join(rows)},
            }
        )
    if desk.figures is not None:
        rows = [
            f"• {render(d.department)}: {d.tickets} tickets, "
            f"{'—' if d.share_taken is None else f'{100 * d.share_taken:.0f} %'} taken, "
            f"first response {duration(d.first_response.median)} median / "
            f"{duration(d.first_response.p90)} p90, "
            f"{d.first_response_breaches + d.resolution_breaches} breaches"
            for d in desk.figures.departments
        ]
        title = f"*Desk, last {desk.figures.days} days* (`/triage stats` for more)"
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": title + "\n" + "\n".join(rows)}}
        )
    return blocks


def home_view(
    summary: HomeSummary,
    *,
    is_admin: bool,
    desk: DeskHome | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The App Home tab (``desk``: the person's tickets, and for a lead the backlog)."""
    blocks: Blocks = [{"type": "header", "text": {"type": "plain_text", "text": "Ticket triage"}}]
    if desk is not None:
        blocks += _desk_blocks(desk, now or datetime.now(UTC))
    active = summary.active
    if active is None:
        model_text = "*Active model:* none yet. An admin can run `/retrain`."
    else:
        figures = []
        if summary.accuracy is not None:
            figures.append(f"accuracy {summary.accuracy:.1%}")
        if summary.macro_f1 is not None:
            figures.append(f"macro-F1 {summary.macro_f1:.3f}")
        on_holdout = f" ({', '.join(figures)} on the holdout)" if figures else ""
        since = active.activated_at.strftime("%Y-%m-%d %H:%M UTC") if active.activated_at else "?"
        model_text = (
            f"*Active model:* #{active.id} `{render(active.model_id)}` ({render(active.learner)})"
            f"{on_holdout}, "
            f"active since {since}, trained on {active.counts.get('train', '?')} examples."
        )
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": model_text}})
    blocks.append(
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Last {summary.days} days:* {summary.tickets} tickets, "
                f"{summary.corrections} corrections.",
            },
        }
    )
    if len(summary.versions) > 1:
        steps = " → ".join(f"#{i} {a:.0%}" for i, a in summary.versions)
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Learning curve* (accuracy on the holdout): {steps}. "
                    "`/evalreport` draws it, with corrections per week.",
                },
            }
        )
    if summary.jobs:
        lines = []
        for job in summary.jobs:
            result = job.result or {}
            outcome = result.get("status") or job.status
            detail = f" — {render(str(result['message']))}" if result.get("message") else ""
            when = job.created_at.strftime("%Y-%m-%d %H:%M")
            lines.append(f"• #{job.id} {job.kind} ({when}): *{render(str(outcome))}*{detail}")
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Recent jobs*\n" + "\n".join(lines)},
            }
        )
    if is_admin and summary.failed:
        blocks.append(_failed_tickets(summary.failed))
    if is_admin:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": HOME_RETRAIN_ACTION,
                        "text": {"type": "plain_text", "text": "Retrain"},
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": HOME_REPORT_ACTION,
                        "text": {"type": "plain_text", "text": "Evaluation report"},
                    },
                    *_auto_retrain_switch(summary.auto_retrain),
                ],
            }
        )
    return {"type": "home", "blocks": fit_blocks(blocks, max_blocks=VIEW_BLOCKS)}


def _oldest_text(stats: DeskStats, d: DepartmentStats) -> str:
    oldest = d.backlog.oldest
    if oldest is None:
        return ""
    age = duration((stats.until - oldest.opened_at).total_seconds())
    # The link is Slack's permalink of the ticket, stored by the bot (never ticket text).
    where = (
        f"<{oldest.permalink}|#{oldest.ticket_id}>" if oldest.permalink else f"#{oldest.ticket_id}"
    )
    return f", oldest {where} ({age})"


def stats_message(stats: DeskStats) -> tuple[str, Blocks]:
    """``/triage stats``: one section per department (fallback text and blocks)."""
    blocks: Blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Desk figures, last {stats.days} days"},
        }
    ]
    for d in stats.departments:
        share = "—" if d.share_taken is None else f"{100 * d.share_taken:.0f} %"
        targets = []
        if d.first_response_minutes:
            targets.append(f"{d.first_response_breaches} past first-response target")
        if d.resolution_hours:
            targets.append(f"{d.resolution_breaches} past resolution target")
        breaches = "; ".join(targets) if targets else "no targets"
        text = (
            f"*{render(d.department)}*: {d.tickets} tickets, {share} taken\n"
            f"First response {duration(d.first_response.median)} median, "
            f"{duration(d.first_response.p90)} p90 · resolution "
            f"{duration(d.resolution.median)} median, {duration(d.resolution.p90)} p90\n"
            f"Backlog {d.backlog.open} open ({d.backlog.unassigned} unassigned)"
            f"{_oldest_text(stats, d)} · {breaches} · corrections {d.corrected_in} in, "
            f"{d.corrected_out} out"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    total = sum(d.tickets for d in stats.departments)
    fallback = f"Desk figures, last {stats.days} days: {total} tickets"
    return message_text(fallback), fit_blocks(blocks)
