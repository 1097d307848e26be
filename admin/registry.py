"""Model registry operations an admin runs: list, activate a given model, roll back.

Switching models never retrains: the artefact of every model is kept, so activation is a
status change plus (in this process) an immediate swap; other processes see the new active
id on their next look (the bot runtime's registry follower, ``ActiveModel.follow``).
"""

from __future__ import annotations

from admin.context import AdminContext
from admin.errors import AdminError
from data.db import model_registry as registry
from data.db.admin_actions import record_action
from data.db.model_registry import StoredModel


async def list_models(ctx: AdminContext, limit: int = 20) -> list[StoredModel]:
    """The newest models, newest first."""
    async with ctx.db.transaction() as conn:
        return await registry.list_models(conn, limit)


async def activate(ctx: AdminContext, registry_id: int, user: str) -> StoredModel:
    """Make model ``registry_id`` the active one (no retraining); recorded as an admin action."""
    async with ctx.db.transaction() as conn:
        try:
            target = await registry.get_model(conn, registry_id)
        except registry.ModelNotFoundError:
            raise AdminError(
                f"There is no model #{registry_id}; `triage models list` shows them."
            ) from None
        artefact = await registry.get_artefact(conn, registry_id)
    # Load before switching: a model that cannot be loaded must never become active.
    model = ctx.load_model(artefact)
    async with ctx.db.transaction() as conn:
        before = await registry.get_active_model_id(conn)
        await registry.activate_model(conn, registry_id)
        await record_action(
            conn,
            user=user,
            action="activate",
            outcome="done",
            detail={"model": registry_id, "previous": before},
        )
        activated = await registry.get_model(conn, target.id)
    if ctx.on_model_activated is not None:
        ctx.on_model_activated(registry_id, model)
    return activated


async def rollback(ctx: AdminContext, user: str) -> StoredModel:
    """Switch back to the model that was active before the current one."""
    async with ctx.db.transaction() as conn:
        previous = await registry.previous_model(conn)
    if previous is None:
        raise AdminError("There is no earlier model to roll back to.")
    return await activate(ctx, previous.id, user)
