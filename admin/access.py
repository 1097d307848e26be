"""Who may run admin commands, and the audit trail of every attempt.

Admins are configured user ids (TRIAGE_ADMIN_USERS) and/or the members of one user group
(TRIAGE_ADMIN_USERGROUP). Group membership lives in Slack, so the caller supplies a lookup
(``GroupMembers``); this module stays free of Slack imports.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from admin.settings import Settings
from data.db.admin_actions import record_action
from data.db.database import Database

log = logging.getLogger(__name__)

#: Looks up the user ids in a user group (the bot calls Slack's usergroups.users.list).
GroupMembers = Callable[[str], Awaitable[Collection[str]]]

REFUSAL = "Sorry, only triage admins can do that. Ask an admin to add you to the admin list."


@dataclass(frozen=True)
class AdminPolicy:
    """The configured admins: user ids and an optional user group."""

    users: frozenset[str]
    usergroup: str | None = None
    group_members: GroupMembers | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, group_members: GroupMembers | None = None
    ) -> AdminPolicy:
        """The policy TRIAGE_ADMIN_USERS / TRIAGE_ADMIN_USERGROUP describe."""
        return cls(frozenset(settings.admin_users), settings.admin_usergroup, group_members)

    async def is_admin(self, user: str) -> bool:
        """Whether ``user`` may run admin commands (a failed group lookup counts as no)."""
        if user in self.users:
            return True
        if self.usergroup is None or self.group_members is None:
            return False
        try:
            return user in await self.group_members(self.usergroup)
        except Exception as exc:
            log.warning("admin user group lookup failed (%s); treating %s as no admin", exc, user)
            return False


async def audit(db: Database, user: str, action: str, outcome: str, detail: dict[str, Any]) -> None:
    """Record one admin action (who, what, outcome; the time is added)."""
    async with db.transaction() as conn:
        await record_action(conn, user=user, action=action, outcome=outcome, detail=detail)
