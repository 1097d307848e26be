"""One message per ticket that ends ``failed``: which ticket, why, and a Retry button.

A failed ticket used to show only as a log line and a count on the admins' Home tab. Now the
bot posts a notice in the admin channel (``TRIAGE_ADMIN_CHANNEL``), else the triage channel
(``TRIAGE_TRIAGE_CHANNEL``); with neither set the log line and the Home tab remain. The notice
never quotes the ticket's text (it could mention people or disguise links), only its number, the
channel it came from and the reason. Its Retry button hands the ticket back the way
``triage tickets retry`` does (admins only, audited: ``AdminDesk.retry_ticket``), and the notice
is then updated in place to say who retried it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.errors import SlackCallError
from bot.mrkdwn import fit_blocks, message_text, render
from bot.slack_gateway import SlackGateway

log = logging.getLogger(__name__)

#: The Retry button on a failure notice; its value is the ticket id.
RETRY_TICKET_ACTION = "triage_ticket_retry"


@dataclass(frozen=True)
class TicketFailure:
    """A ticket that ended ``failed``, and why (one sentence for an admin, no ticket text)."""

    ticket_id: int
    channel: str
    reason: str


@dataclass(frozen=True)
class RetryTicketPress:
    """Someone pressed Retry on a failure notice."""

    user: str
    ticket_id: int
    channel: str
    ts: str


def failure_notice(failure: TicketFailure) -> tuple[str, list[dict[str, Any]]]:
    """The notice's text (for notifications) and blocks."""
    text = (
        f":warning: Ticket #{failure.ticket_id} from <#{failure.channel}> was not routed: "
        f"{render(failure.reason)}"  # an error's text: rendered like any text from outside
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Fix the cause, then press Retry (admins), or run "
                    f"`triage tickets retry {failure.ticket_id}`.",
                }
            ],
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": RETRY_TICKET_ACTION,
                    "text": {"type": "plain_text", "text": "Retry"},
                    "value": str(failure.ticket_id),
                }
            ],
        },
    ]
    return message_text(text), fit_blocks(blocks)


def retried_notice(ticket_id: int, user: str) -> tuple[str, list[dict[str, Any]]]:
    """The notice once an admin retried the ticket (no button any more)."""
    text = f":arrows_counterclockwise: Ticket #{ticket_id} was retried by <@{user}>."
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def parse_retry_ticket(body: dict[str, Any]) -> RetryTicketPress | None:
    """The Retry press in a block_actions payload; None when it is not a well-formed one."""
    actions = body.get("actions") or []
    value = str(actions[0].get("value", "")) if actions else ""
    # Strictly ASCII digits: int() would also take "²" or "١" (see #10 item 6).
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    user = str((body.get("user") or {}).get("id", ""))
    channel = str((body.get("channel") or {}).get("id", ""))
    ts = str((body.get("container") or {}).get("message_ts", ""))
    if not user:
        return None
    return RetryTicketPress(user=user, ticket_id=int(value), channel=channel, ts=ts)


class FailureNotices:
    """Posts failure notices in one channel (None: nowhere); a failed post is only logged."""

    def __init__(self, slack: SlackGateway, channel: str | None) -> None:
        self._slack = slack
        self.channel = channel

    async def post(self, failure: TicketFailure) -> None:
        """Post the notice for ``failure`` (never raises: the ticket is already ``failed``)."""
        if not self.channel:
            return
        text, blocks = failure_notice(failure)
        try:
            await self._slack.post_message(self.channel, text, blocks=blocks)
        except (SlackCallError, aiohttp.ClientError, TimeoutError):
            log.warning(
                "Could not post the failure notice of ticket %s in %s",
                failure.ticket_id,
                self.channel,
                exc_info=True,
            )
