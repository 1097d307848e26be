"""What the automatic-retrain check reads: corrections so far and the pause switch.

The switch is the newest ``retrain-auto`` entry of the admin audit log (outcome ``on`` or
``off``), so every replica reads the same answer and the log says who flipped it and when.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.examples import Source
from data.db.schema import admin_actions, training_examples

#: The audit action that pauses or resumes automatic retrains.
SWITCH_ACTION = "retrain-auto"


async def corrections_count(conn: AsyncConnection) -> int:
    """Corrected tickets with a standing human label."""
    query = select(func.count()).where(training_examples.c.source == Source.CORRECTION.value)
    return int((await conn.execute(query)).scalar_one())


async def auto_retrain_paused(conn: AsyncConnection) -> bool:
    """Whether an admin paused automatic retrains (the newest switch entry says ``off``)."""
    row = (
        await conn.execute(
            select(admin_actions.c.outcome)
            .where(admin_actions.c.action == SWITCH_ACTION)
            .order_by(admin_actions.c.id.desc())
            .limit(1)
        )
    ).first()
    return row is not None and row.outcome == "off"
