from __future__ import annotations

from collections.abc import Collection

from admin.access import AdminPolicy, audit
from admin.settings import load_settings
from data.db.admin_actions import list_actions
from data.db.database import Database


async def _members(group: str) -> Collection[str]:
    return {"S-ADMINS": {"U-GROUP"}}.get(group, set())


async def _broken(group: str) -> Collection[str]:
    raise ConnectionError("slack is down")


async def test_users_and_group_members_are_admins_and_a_refusal_is_audited(
    sqlite_url: str,
) -> None:
    settings = load_settings(admin_users="U1, U2", admin_usergroup="S-ADMINS")
    policy = AdminPolicy.from_settings(settings, _members)
    assert [await policy.is_admin(u) for u in ("U1", "U2", "U-GROUP", "U3")] == [
        True,
        True,
        True,
        False,
    ]
    assert not await AdminPolicy.from_settings(settings, _broken).is_admin("U-GROUP")
    db = Database(sqlite_url)
    await db.start()
    try:
        await audit(db, "U3", "retrain", "refused", {"learner": "local"})
        async with db.transaction() as conn:
            actions = await list_actions(conn)
        assert [(a.user, a.action, a.outcome, a.detail) for a in actions] == [
            ("U3", "retrain", "refused", {"learner": "local"})
        ]
    finally:
        await db.close()
