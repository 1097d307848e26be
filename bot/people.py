"""Who is this? The bot's one answer: agent, requester, external user, bot, or unknown.

The rule is ``data.people.standing``; this module gathers its facts from Slack and caches them:

- the members of the agent channels (department, triage and admin channels) from
  conversations.members, kept current by ``member_joined_channel`` / ``member_left_channel``
  events (``joined`` / ``left``) and reloaded every ``refresh_seconds``;
- the members of ``TRIAGE_AGENT_USERGROUP`` from usergroups.users.list, reloaded likewise;
- users.info per user (bot, home team, ``is_stranger``), kept for ``refresh_seconds``.

Fail closed: a user whose users.info failed, or who is in none of the channels that could be
read while another could not, is ``UNKNOWN`` and is not treated as an agent. A list that loaded
once stays in use (kept current by the events) when a later reload fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.errors import SlackCallError
from bot.slack_gateway import SlackGateway, UserInfo
from data.clock import Clock, SystemClock
from data.people import Person, PersonFacts, standing

log = logging.getLogger(__name__)

#: Seconds between reloads of the agent channels' members, the agent group and users.info.
REFRESH_SECONDS = 600.0


class People:
    """See the module docstring."""

    def __init__(
        self,
        slack: SlackGateway,
        agent_channels: Iterable[str],
        agent_usergroup: str | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._slack = slack
        self.agent_channels = tuple(dict.fromkeys(c for c in agent_channels if c))
        self._usergroup = agent_usergroup or None
        self._refresh_seconds = refresh_seconds
        self._clock = clock or SystemClock()
        self._members: dict[str, set[str]] = {}  # channels whose members are loaded
        self._group: set[str] | None = None
        self._users: dict[str, tuple[float, UserInfo]] = {}

    # -- the background task ------------------------------------------------------------

    async def run(self) -> None:
        """Reload the lists every ``refresh_seconds`` until cancelled (a supervisor's task)."""
        while True:
            await self._clock.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the next round tries again; lists loaded before stay in use
                log.warning("Reloading the agents failed", exc_info=True)

    async def refresh(self) -> None:
        """Reload every agent channel's members and the agent group (failures are logged)."""
        for channel in self.agent_channels:
            await self._load_channel(channel)
        await self._load_group()
        now = self._clock.monotonic()
        self._users = {
            user: entry
            for user, entry in self._users.items()
            if now - entry[0] < self._refresh_seconds
        }

    async def _load_channel(self, channel: str) -> bool:
        try:
            self._members[channel] = await self._slack.channel_members(channel)
        except SlackCallError as exc:
            log.warning("Cannot read the members of agent channel %s (%s)", channel, exc)
            return False
        return True

    async def _load_group(self) -> bool:
        if self._usergroup is None:
            return True
        try:
            self._group = await self._slack.usergroup_members(self._usergroup)
        except SlackCallError as exc:
            log.warning("Cannot read the agent user group %s (%s)", self._usergroup, exc)
            return False
        return True

    # -- events -------------------------------------------------------------------------

    def joined(self, channel: str, user: str) -> None:
        """``user`` joined ``channel`` (member_joined_channel)."""
        if channel in self._members:
            self._members[channel].add(user)

    def left(self, channel: str, user: str) -> None:
        """``user`` left ``channel`` (member_left_channel)."""
        if channel in self._members:
            self._members[channel].discard(user)

    # -- the question -------------------------------------------------------------------

    async def who(self, user: str, *, team: str | None = None, person: bool = False) -> Person:
        """What ``user`` is; ``team`` is the user's team when the event carried one.

        ``person``: the event says a person wrote it (a message without ``bot_id``); with its
        team that is all users.info would add, so a busy channel of new requesters costs no
        users.info call per requester (Slack allows about a hundred a minute).
        """
        identity = self._slack.identity
        if identity is not None and user == identity.user_id:
            return standing(PersonFacts(user, True, False, False, False))
        info = None if person and self._team_decides(team) else await self._user(user)
        facts = PersonFacts(
            user=user,
            is_bot=(False if person else None) if info is None else info.is_bot,
            is_external=self._external(info, team),
            in_agent_channel=await self._in_agent_channel(user),
            in_agent_group=await self._in_agent_group(user),
        )
        return standing(facts)

    async def _user(self, user: str) -> UserInfo | None:
        cached = self._users.get(user)
        now = self._clock.monotonic()
        if cached is not None and now - cached[0] < self._refresh_seconds:
            return cached[1]
        try:
            info = await self._slack.user_info(user)
        except SlackCallError as exc:
            log.warning("Cannot look up user %s (%s); treating them as no agent", user, exc)
            return None
        self._users[user] = (now, info)
        return info

    def _team_decides(self, team: str | None) -> bool:
        """Whether the event's team alone tells an external user from a colleague: not on
        an Enterprise Grid, where another team may be the same organisation."""
        identity = self._slack.identity
        return bool(team) and identity is not None and not identity.enterprise_id

    def _external(self, info: UserInfo | None, team: str | None) -> bool | None:
        identity = self._slack.identity
        if identity is None:
            return None
        # The event's own team field: another team is another organisation, except on an
        # Enterprise Grid, where users.info's enterprise decides instead.
        if team and team != identity.team_id and not identity.enterprise_id:
            return True
        if info is None and team and self._team_decides(team):
            return False  # the workspace's own team
        if info is None:
            return None
        if info.is_stranger:
            return True
        if info.team_id and info.team_id != identity.team_id:
            same_org = bool(identity.enterprise_id) and info.enterprise_id == identity.enterprise_id
            return not same_org
        return False

    async def in_channel(self, channel: str, user: str) -> bool:
        """Whether ``user`` is a member of ``channel`` (an agent channel; False when its
        members cannot be read: a correction then does not keep the ticket's owner)."""
        if channel not in self._members and not await self._load_channel(channel):
            return False
        return user in self._members.get(channel, ())

    async def _in_agent_channel(self, user: str) -> bool | None:
        for channel in self.agent_channels:
            if channel not in self._members:
                await self._load_channel(channel)
        if any(user in self._members.get(channel, ()) for channel in self.agent_channels):
            return True
        return False if all(c in self._members for c in self.agent_channels) else None

    async def _in_agent_group(self, user: str) -> bool | None:
        if self._usergroup is None:
            return False
        if self._group is None and not await self._load_group():
            return None
        return self._group is not None and user in self._group
