"""Block Kit and message text for everything the bot posts. Pure functions, no I/O.

Ticket text is escaped (``&``, ``<``, ``>``) before it goes into mrkdwn, so a ticket cannot
mention ``@channel`` or fake a link, and cut to fit Slack's 3,000-character section limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.payloads import ROUTE_ACTION_PREFIX
from classifier.taxonomy import Department, Taxonomy

#: Room for the ticket text in a card's section (Slack allows 3,000 characters per section).
CARD_TEXT_CHARS = 2_800

Blocks = list[dict[str, Any]]


def escape(text: str) -> str:
    """Text safe to put inside mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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


def ticket_card(card: CardContent, taxonomy: Taxonomy) -> tuple[str, Blocks]:
    """The card posted in a department (or the triage) channel: fallback text and blocks."""
    dept = card.department
    if card.decided_by:
        verdict = f":{dept.emoji}: *{dept.name}* (chosen by <@{card.decided_by}>)"
    elif card.ask_for_department:
        verdict = f":{dept.emoji}: *{dept.name}?* Not sure ({percent(card.confidence)}): "
        verdict += "please choose the department."
    else:
        verdict = f":{dept.emoji}: *{dept.name}* ({percent(card.confidence)})"
    others = ", ".join(f"{label} {percent(score)}" for label, score in card.runner_ups[:2])
    context = f"From <@{card.author}> · <{card.permalink}|view ticket>"
    if others and not card.decided_by:
        context += f" · runner-ups: {others}"
    blocks: Blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": verdict}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": escape(shorten(card.text, CARD_TEXT_CHARS))},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    if card.ask_for_department:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"triage_route_{card.ticket_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"{ROUTE_ACTION_PREFIX}{d.name}",
                        "text": {"type": "plain_text", "text": shorten(d.name, 75)},
                        "value": str(card.ticket_id),
                        **({"style": "primary"} if d.name == dept.name else {}),
                    }
                    for d in list(taxonomy)[:25]
                ],
            }
        )
    fallback = f"Ticket for {dept.name}: {shorten(card.text, 200)}"
    return fallback, blocks


def resolved_triage_card(
    card: CardContent, chosen: Department, user: str | None
) -> tuple[str, Blocks]:
    """What a triage card becomes once the ticket has gone to a department (no buttons)."""
    who = f" by <@{user}>" if user else ""
    text = f":{chosen.emoji}: Sent to *{chosen.name}*{who}. <{card.permalink}|View ticket>"
    return f"Sent to {chosen.name}", [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


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
