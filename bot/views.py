"""Block Kit and message text for everything the bot posts. Pure functions, no I/O.

Ticket text goes through ``bot.mrkdwn.render`` exactly once (Slack delivers it already
entity-encoded; mentions and disguised links are neutralised) and every final string is kept
within Slack's limits (``bot.mrkdwn.fit_blocks``). A card Slack still refuses is posted again at
a lower ``level``: shorter text, then only a link to the ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.mrkdwn import SECTION_TEXT, fit, fit_blocks, message_text, render
from bot.payloads import DESK_ACTION_PREFIX, REOPEN, RESOLVE, ROUTE_ACTION_PREFIX, TAKE
from classifier.taxonomy import Department, Taxonomy

#: Characters of ticket text on a card posted again after Slack refused the full one.
SHORT_CARD_CHARS = 1_000
#: Characters of the latest follow-up shown on a card.
FOLLOW_UP_CHARS = 300
#: Levels of a card: full text, shorter text, only a link to the ticket.
CARD_LEVELS = 3
#: Slack's answers that mean "this message's content is refused": post a simpler card.
CARD_REFUSED = frozenset({"invalid_blocks", "msg_too_long", "msg_blocks_too_long"})

Blocks = list[dict[str, Any]]


def percent(confidence: float) -> str:
    """A confidence as a whole percentage."""
    return f"{round(confidence * 100)} %"


@dataclass(frozen=True)
class CardContent:
    """What a ticket's card shows."""

    ticket_id: int
    text: str
    author: str
    permalink: str
    department: Department
    confidence: float
    runner_ups: Sequence[tuple[str, float]]
    decided_by: str | None = None  # the person whose label this is, if not the model's
    ask_for_department: bool = False  # low confidence: one button per department
    #: Routed by a recent correction: (the corrected ticket's id, who corrected it).
    like: tuple[int, str] | None = None
    #: The requester's replies in the ticket's thread: how many, and the latest.
    follow_ups: int = 0
    last_follow_up: str | None = None
    #: The requester was told little (TRIAGE_PUBLIC_REPLY=minimal): the card says how to correct.
    legend: bool = False
    #: Top-level messages in the conversation.
    parts: int = 1
    #: Where the ticket stands in the desk (``data.db.desk``: open, in_progress, resolved) and
    #: who owns it; None: not in the desk (shadow mode), no status line and no buttons.
    status: str | None = None
    assignee: str | None = None


#: What each desk status is called on a card.
STATUS_NAMES = {"open": "Open", "in_progress": "In progress", "resolved": "Resolved"}
#: The buttons a card shows per desk status: (action, label, style).
_DESK_BUTTONS: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "open": ((TAKE, "Take it", "primary"), (RESOLVE, "Resolve", None)),
    "in_progress": ((RESOLVE, "Resolve", "primary"),),
    "resolved": ((REOPEN, "Reopen", None),),
}


def status_line(status: str, assignee: str | None) -> str:
    """The card's status line: "*Status:* In progress · owner <@U…>"."""
    line = f"*Status:* {STATUS_NAMES.get(status, status)}"
    if assignee:
        line += f" · owner <@{assignee}>"
    return line


def desk_value(ticket_id: int, department: str) -> str:
    """A desk button's value: the ticket and the department the card was drawn for (a press
    on a card drawn before a correction moved the ticket is told so)."""
    return f"{ticket_id}:{department}"


def _desk_blocks(card: CardContent) -> Blocks:
    if card.status is None:
        return []
    line = status_line(card.status, card.assignee)
    buttons = [
        {
            "type": "button",
            "action_id": f"{DESK_ACTION_PREFIX}{action}",
            "text": {"type": "plain_text", "text": label},
            "value": desk_value(card.ticket_id, card.department.name),
            **({"style": style} if style else {}),
        }
        for action, label, style in _DESK_BUTTONS.get(card.status, ())
    ]
    blocks: Blocks = [{"type": "context", "elements": [{"type": "mrkdwn", "text": line}]}]
    if buttons:
        blocks.append(
            {"type": "actions", "block_id": f"triage_desk_{card.ticket_id}", "elements": buttons}
        )
    return blocks


def _ticket_text(card: CardContent, level: int) -> str:
    if level == 0:
        return fit(render(card.text), SECTION_TEXT)
    link = f"<{card.permalink}|the ticket>" if card.permalink else "the ticket"
    if level == 1:
        note = f"\n_(shortened: Slack refused the full text; see {link})_"
        return fit(render(card.text), SHORT_CARD_CHARS) + note
    return f"_The ticket's text could not be shown here; see {link}._"


def ticket_card(card: CardContent, taxonomy: Taxonomy, level: int = 0) -> tuple[str, Blocks]:
    """The card posted in a department (or the triage) channel: fallback text and blocks.

    ``level`` 1 and 2 are the simpler cards posted when Slack refused the one before.
    """
    dept = card.department
    if card.decided_by:
        verdict = f":{dept.emoji}: *{dept.name}* (chosen by <@{card.decided_by}>)"
    elif card.ask_for_department:
        verdict = f":{dept.emoji}: *{dept.name}?* Not sure ({percent(card.confidence)}): "
        verdict += "please choose the department."
    elif card.like is not None:
        ticket_id, user = card.like
        by = f", corrected by <@{user}>" if user else ""
        verdict = f":{dept.emoji}: *{dept.name}* (like #{ticket_id}{by})"
    else:
        verdict = f":{dept.emoji}: *{dept.name}* ({percent(card.confidence)})"
    others = ", ".join(f"{label} {percent(score)}" for label, score in card.runner_ups[:2])
    context = f"From <@{card.author}> · <{card.permalink}|view ticket>"
    if card.parts > 1:
        context += f" · {card.parts} messages"
    if others and not card.decided_by:
        context += f" · runner-ups: {others}"
    blocks: Blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": verdict}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _ticket_text(card, level)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    if card.follow_ups and level < 2:
        plural = "s" if card.follow_ups != 1 else ""
        latest = fit(render(card.last_follow_up or ""), FOLLOW_UP_CHARS)
        line = f"*+{card.follow_ups} follow-up{plural}* · latest: {latest}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    if card.legend:
        legend = _how_to_correct(taxonomy).replace("this ticket", "the ticket or this card")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": legend}]})
    blocks.extend(_desk_blocks(card))
    if card.ask_for_department:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"triage_route_{card.ticket_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"{ROUTE_ACTION_PREFIX}{d.name}",
                        "text": {"type": "plain_text", "text": d.name},
                        "value": str(card.ticket_id),
                        **({"style": "primary"} if d.name == dept.name else {}),
                    }
                    for d in taxonomy
                ],
            }
        )
    summary = fit(render(card.text), 200) if level < 2 else "see the card"
    return message_text(f"Ticket for {dept.name}: {summary}"), fit_blocks(blocks)


def resolved_triage_card(
    card: CardContent, chosen: Department, user: str | None
) -> tuple[str, Blocks]:
    """What a triage card becomes once the ticket has gone to a department (no buttons)."""
    who = f" by <@{user}>" if user else ""
    text = f":{chosen.emoji}: Sent to *{chosen.name}*{who}. <{card.permalink}|View ticket>"
    blocks: Blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    return f"Sent to {chosen.name}", fit_blocks(blocks)


def _how_to_correct(taxonomy: Taxonomy) -> str:
    choices = ", ".join(f":{d.emoji}: {d.name}" for d in taxonomy)
    return f"Wrong department? React to this ticket with the right one: {choices}."


def first_reply(
    dept: Department, confidence: float, destination: str, in_triage: bool, taxonomy: Taxonomy
) -> str:
    """The one thread reply under a newly routed ticket."""
    if in_triage:
        head = (
            f"Looks like *{dept.name}*, but I'm not sure ({percent(confidence)}): "
            f"sent to <#{destination}> for a person to choose."
        )
    else:
        head = f"Routed to *{dept.name}* ({percent(confidence)}) in <#{destination}>."
    return f"{head} {_how_to_correct(taxonomy)}"


def minimal_reply(dept: Department | None) -> str:
    """What a requester is told when they see little (TRIAGE_PUBLIC_REPLY=minimal): no
    confidence, no internal channel, no emoji legend (that goes on the card)."""
    if dept is None:  # unsure: a person chooses the department
        return "Thanks — our support team has this."
    return f"Thanks — our {dept.name} team has this."


def correction_reply(dept: Department, user: str, destination: str) -> str:
    """Confirms in the ticket's thread that a person moved it."""
    return f"Moved to *{dept.name}* by <@{user}>: the card is now in <#{destination}>. Thanks!"


def undo_reply(dept: Department, destination: str) -> str:
    """Confirms in the thread that a correction was undone."""
    return f"Correction undone: back to *{dept.name}* in <#{destination}>."


def reclassified_reply(dept: Department, confidence: float, destination: str) -> str:
    """Says in the thread that an edited ticket now goes elsewhere."""
    return (
        f"After the edit this looks like *{dept.name}* ({percent(confidence)}): "
        f"moved to <#{destination}>."
    )


def duration_text(span: timedelta) -> str:
    """A wait as people say it: "45 min", "2 h 05 min", "3 d 4 h"."""
    minutes = max(0, int(span.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def _target_text(dept: Department, factor: int = 1) -> str:
    assert dept.first_response_minutes is not None
    target = duration_text(timedelta(minutes=dept.first_response_minutes * factor))
    when = f", counted {dept.hours.text}" if dept.hours is not None else ""
    return f"{target}{when}"


def nudge_text(dept: Department, waited: timedelta) -> str:
    """The nudge in a card's thread: no first response within the department's target.
    (The on-call group's mention is added by the gateway, from the taxonomy only.)"""
    return (
        f":hourglass: No first response yet after {duration_text(waited)} "
        f"(*{dept.name}* target: {_target_text(dept)}). Can someone take it?"
    )


def escalation_text(dept: Department, ticket_id: int, waited: timedelta, card_link: str) -> str:
    """The escalation in the triage channel at twice the target. ``card_link`` is Slack's
    permalink of the card (from chat.getPermalink, never from ticket text)."""
    return (
        f":rotating_light: Ticket #{ticket_id} in *{dept.name}* has had no first response for "
        f"{duration_text(waited)}, twice its target ({_target_text(dept)}). "
        f"<{card_link}|Open the card>"
    )


def taken_line(agent: str, dept: Department) -> str:
    """The requester's thread when an agent takes the ticket (the bot's own mention of the
    agent; nothing from ticket text)."""
    return f"<@{agent}> from {dept.name} is on it."


def resolved_line(agent: str) -> str:
    """The requester's thread when the ticket is resolved."""
    return f"Resolved by <@{agent}>. Reply here if anything is still wrong."


def desk_refusal(reason: str | None, owner: str | None, dept: Department | None) -> str:
    """The ephemeral answer to a desk action that changed nothing (``data.db.desk`` reasons)."""
    match reason:
        case "taken":
            return f"<@{owner}> has this ticket already." if owner else "Someone has it already."
        case "already_yours":
            return "This ticket is already yours."
        case "already_resolved":
            return "This ticket is resolved already."
        case "not_resolved":
            return "This ticket is not resolved, so there is nothing to reopen."
        case "moved":
            where = f" to *{dept.name}*" if dept is not None else ""
            return f"This ticket was moved{where} meanwhile; its card there is the current one."
        case "missing":
            return "This ticket is no longer on the desk (withdrawn or deleted)."
        case "not_an_agent":
            return (
                "Only agents (members of the support teams' channels) can take or resolve tickets."
            )
    return "Nothing to do: the ticket is already so."
