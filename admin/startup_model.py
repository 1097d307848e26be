"""The model a starting bot routes with: the first one, and a new one when the taxonomy changed.

``ensure_model_for_taxonomy`` runs once at start-up, before any ticket is routed:

* no active model yet (first start): the configured learner trains on what fits this taxonomy
  (starter tickets of departments it has, stored tickets and corrections) plus the taxonomy
  itself (``admin.taxonomy_training``), and the model becomes active. Any valid taxonomy works,
  offline, with no labelled ticket at all;
* an active model whose departments differ from the taxonomy's (a department added, renamed or
  removed): a model covering every department is trained the same way, keeping the corrections
  of departments that still exist (a ``renamed_from`` department's carry over), and promoted at
  once, so the bot never routes to a department that no longer exists. The returned message
  says so, for the admin channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from admin.taxonomy_training import learner_input_with_tickets
from admin.training_data import assemble_training_data, read_starter
from classifier.artifacts import unpack
from classifier.json_value import json_strings
from classifier.learners import LearnerContext, get_learner
from classifier.protocols import Learner
from classifier.taxonomy import Taxonomy
from data import STARTER_TRAIN
from data.db import model_registry as registry
from data.db.database import Database
from data.db.training_set import list_training_examples

log = logging.getLogger(__name__)

#: Builds the learner to train with, by name (the runtime passes one that knows the OpenAI
#: client, so TRIAGE_LEARNER=openai works at first start).
LearnerFactory = Callable[[str], Learner]


@dataclass(frozen=True)
class StartupModel:
    """What start-up did about the model."""

    #: The registry id of a model trained now, or None when the active one was kept.
    trained_id: int | None = None
    #: For the admin channel; None when nothing changed.
    message: str | None = None


def stored_labels(artefact: bytes) -> tuple[str, ...] | None:
    """The departments a stored model was trained for (None if its file does not say)."""
    labels = json_strings(unpack(artefact).meta.get("labels"))
    return tuple(labels) if labels is not None else None


def describe_change(before: Sequence[str], taxonomy: Taxonomy) -> str:
    """'added: A, B; removed: C' between a model's labels and the taxonomy's departments."""
    added = [label for label in taxonomy.labels if label not in before]
    removed = [label for label in before if label not in taxonomy]
    renamed = [
        f"{old} -> {dept.name}"
        for dept in taxonomy
        for old in dept.renamed_from
        if old in removed and dept.name in added
    ]
    parts = []
    if renamed:
        parts.append(f"renamed: {', '.join(renamed)}")
        moved = {part.split(" -> ")[0] for part in renamed} | {p.split(" -> ")[1] for p in renamed}
        added = [label for label in added if label not in moved]
        removed = [label for label in removed if label not in moved]
    if added:
        parts.append(f"added: {', '.join(added)}")
    if removed:
        parts.append(f"removed: {', '.join(removed)}")
    return "; ".join(parts)


async def ensure_model_for_taxonomy(
    db: Database,
    learner_name: str,
    taxonomy: Taxonomy,
    context: LearnerContext,
    *,
    seed: int = 0,
    starter_train: Sequence[Path] = (STARTER_TRAIN,),
    learners: LearnerFactory | None = None,
) -> StartupModel:
    """Make sure the active model covers exactly ``taxonomy``'s departments (see above)."""
    async with db.transaction() as conn:
        active = await registry.get_active_model(conn)
        artefact = await registry.get_artefact(conn, active.id) if active is not None else None
    before: tuple[str, ...] | None = None
    if active is not None and artefact is not None:
        before = stored_labels(artefact)
        if before is None or set(before) == set(taxonomy.labels):
            return StartupModel()
    build = learners or (lambda name: get_learner(name, context))
    learner = build(learner_name)
    starter = await asyncio.to_thread(read_starter, starter_train)
    async with db.transaction() as conn:
        stored = await list_training_examples(conn)
    # Held-out tickets stay out of training here too, as in every retrain.
    data = assemble_training_data(taxonomy, starter_train=starter, starter_test=(), stored=stored)
    given = await learner_input_with_tickets(db, learner, learner_name, data.train, taxonomy)
    log.info(
        "Training %r for %d departments on %d examples (%d from the taxonomy)",
        learner_name,
        len(given.labels),
        len(data.train),
        len(given.examples) - len(data.train),
    )
    model = await learner.train(given.examples, given.labels, seed=seed)
    payload = await asyncio.to_thread(model.to_bytes)
    async with db.transaction() as conn:
        current = await registry.get_active_model(conn)
        if (current.id if current else None) != (active.id if active else None):
            return StartupModel()  # another replica did it first
        trained_id = await registry.save_model(
            conn,
            model_id=model.model_id,
            learner=model.learner,
            artefact=payload,
            data_hash=data.data_hash,
            counts=data.counts(),
            metrics={},
            created_by="bootstrap" if before is None else "taxonomy-change",
        )
        await registry.activate_model(conn, trained_id)
    if before is None:
        log.info("Trained the first model (registry id %s)", trained_id)
        return StartupModel(trained_id)
    assert active is not None
    message = (
        f"The departments changed since model #{active.id} was trained "
        f"({describe_change(before, taxonomy)}). Trained model #{trained_id} ({model.learner}, "
        f"{len(data.train)} stored and starter examples plus the taxonomy) covering all "
        f"{len(taxonomy)} departments and made it active; run /retrain to compare it on held-out "
        "tickets once there are some."
    )
    log.info("%s", message)
    return StartupModel(trained_id, message)
