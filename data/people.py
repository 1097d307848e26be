"""Who is who: the one rule that tells agents from everyone else, and who may label tickets.

Agents are the members of the department, triage and admin channels, plus the members of
``TRIAGE_AGENT_USERGROUP``. Everyone else is a requester, including people from another
organisation in a Slack Connect channel (external), who are never agents even when they sit in
an agent channel. Bots are neither. When a lookup failed and the answer is not known, the person
counts as no agent: the rule fails closed.

This module is the pure rule over facts already looked up (``bot.people`` gathers them from
Slack and caches them), so the bot, the admin jobs and the data layer share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Standing(StrEnum):
    """What a person is to the support desk."""

    AGENT = "agent"
    REQUESTER = "requester"  # a person of this workspace who is no agent
    EXTERNAL = "external"  # another organisation's user (Slack Connect)
    BOT = "bot"
    UNKNOWN = "unknown"  # a lookup failed: treated as no agent


@dataclass(frozen=True)
class PersonFacts:
    """What is known about one user; None where a lookup failed."""

    user: str
    is_bot: bool | None
    #: Another organisation's user: the event's team, users.info's ``is_stranger`` or its
    #: ``team_id`` differing from the workspace's.
    is_external: bool | None
    #: Member of a department, triage or admin channel (None: a channel could not be read
    #: and the user was in none of those that could).
    in_agent_channel: bool | None
    #: Member of TRIAGE_AGENT_USERGROUP (False when none is configured).
    in_agent_group: bool | None


@dataclass(frozen=True)
class Person:
    """A user and what they are, with the reason (for logs)."""

    user: str
    standing: Standing
    reason: str

    @property
    def is_agent(self) -> bool:
        """Whether the person is an agent."""
        return self.standing is Standing.AGENT


def standing(facts: PersonFacts) -> Person:
    """Classify a user from the facts; any fact that matters and is unknown fails closed."""
    user = facts.user
    if facts.is_bot is None:
        return Person(user, Standing.UNKNOWN, "could not look the user up")
    if facts.is_bot:
        return Person(user, Standing.BOT, "a bot or app")
    if facts.is_external is None:
        return Person(user, Standing.UNKNOWN, "could not tell whether the user is external")
    if facts.is_external:
        return Person(user, Standing.EXTERNAL, "a user of another organisation")
    if facts.in_agent_channel or facts.in_agent_group:
        return Person(user, Standing.AGENT, "member of an agent channel or the agent group")
    if facts.in_agent_channel is None or facts.in_agent_group is None:
        return Person(user, Standing.UNKNOWN, "could not read every agent channel or group")
    return Person(user, Standing.REQUESTER, "in no agent channel or the agent group")


class Refusal(StrEnum):
    """Why a label from a person is not taken."""

    NOT_AN_AGENT = "not an agent"
    AUTHOR = "the ticket's own author, not an agent"
    EXTERNAL = "a user of another organisation"
    BOT = "a bot"
    UNSURE = "could not tell who this is"


def may_label(person: Person, author: str | None) -> Refusal | None:
    """None when ``person`` may correct a ticket written by ``author``; else why not.

    Only agents label tickets. The author may correct their own ticket only as an agent (an
    agent's own ticket); an external user never, even inside an agent channel.
    """
    match person.standing:
        case Standing.AGENT:
            return None
        case Standing.BOT:
            return Refusal.BOT
        case Standing.EXTERNAL:
            return Refusal.EXTERNAL
        case Standing.UNKNOWN:
            return Refusal.UNSURE
    return Refusal.AUTHOR if author is not None and person.user == author else Refusal.NOT_AN_AGENT
