"""Benchmark: how fast corrections make the next ticket better (issue #15), no Slack needed.

A stream of real customer queries (BANKING77's training split, CC BY 4.0, mapped onto the five
default departments with the shared ``department_mapping.json``; read in place, never copied)
arrives at a bot that starts from (a) the default taxonomy and the shipped starter data. Each
ticket is routed (the active model, or a near-duplicate of a recent correction); an agent
corrects every wrong label, through the real correction rows of the data layer; retrains run
the real job (``admin.retrain``: data assembly with the holdout rule, training, evaluation on
the holdout, the promotion gate, promotion) in this process, on a SQLite database in a
temporary folder, whenever the policy says so.

Two policies run on the same stream in the same run:

- ``loop``: what the bot now does: automatic retrains on ``admin.retrain_schedule``'s young
  schedule (5, 10, 20, then every 20 corrections), the holdout rule of the settings
  (``TRIAGE_HOLDOUT_CAP``), near-duplicate routing over recent corrections, and the team's
  vote (each ticket's model probabilities blended with the labels of its most similar
  corrected or confirmed team tickets, ``classifier.near_duplicates``);
- ``baseline``: today's habit as the issue measured it: a retrain every 50 corrections, 20 %
  of corrections held out from the first one, no near-duplicate routing.

Recorded per policy: accuracy on BANKING77's test split after 0, 25, 50, 100, 200, 300, 500
corrections (after any retrain that correction started), the share of the first 1,000 streamed
tickets routed right first time, retrains run and promoted, and the process CPU seconds spent
in retrains. "full" is the learner trained on the starter data plus the whole training split.

``--choose-threshold`` instead runs the loop policy without near-duplicate routing on the
same stream, and scores similarity thresholds on a validation slice of the training split
that is never streamed (and never the test split); the figures chose the thresholds in
``classifier.near_duplicates``.

MiniLM embeddings of every text are cached in ``out/loop/`` (gitignored), so reruns cost only
training. Not a test: it prints its figures, then one JSON line.

``--choosing-stream SEED`` streams instead the training tickets the benchmark streams after
its first 1,000, reshuffled with SEED, and scores the curve on the validation slice: settings
are compared there (``--young``, ``--every``, ``--index``, ``--set``), never on the reported
stream or the test split. ``--tickets N`` stops each policy after N tickets. ``--vote`` changes
the team vote's settings (``weight=0`` turns it off); ``--trace FILE`` writes each ticket's
model probabilities for ``bench/loop_vote.py``, which replays a trace with other vote settings.

    python bench/loop.py [--learner embedding|tfidf] [--start a|b] [--datasets PATH]
                         [--choose-threshold] [--policies loop,baseline] [--until 300]
                         [--tickets N] [--choosing-stream SEED] [--young 5,10,20] [--every 20]
                         [--index young_threshold=0.65] [--vote weight=0.6] [--trace FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from admin.context import build_admin_context  # noqa: E402
from admin.learner_setup import learner_context  # noqa: E402
from admin.near_duplicates import features_for  # noqa: E402
from admin.retrain import RetrainRequest, retrain  # noqa: E402
from admin.retrain_schedule import EVERY_50, RetrainSchedule  # noqa: E402
from admin.settings import Settings  # noqa: E402
from admin.training_data import read_starter  # noqa: E402
from bench.banking77 import find_datasets, read_banking77  # noqa: E402
from classifier.calibration import adaptive_threshold  # noqa: E402
from classifier.examples import Example  # noqa: E402
from classifier.learners import LearnerContext, get_learner  # noqa: E402
from classifier.near_duplicates import (  # noqa: E402
    VOTE_FLOOR,
    VOTE_FULL_AT,
    VOTE_NEIGHBOURS,
    VOTE_TEMPERATURE,
    CorrectedTicket,
    NearDuplicateIndex,
    blended,
    vote_weight_for,
)
from classifier.protocols import TrainedModel  # noqa: E402
from classifier.taxonomy import load_taxonomy  # noqa: E402
from data import DEFAULT_TAXONOMY, STARTER_TEST, STARTER_TRAIN  # noqa: E402
from data.db.corrections import record_correction, sync_training_example  # noqa: E402
from data.db.database import Database  # noqa: E402
from data.db.routings import CARD, record_routing  # noqa: E402
from data.db.schema import corrections, tickets  # noqa: E402
from data.db.tickets import ROUTED, NewTicket, store_ticket  # noqa: E402

CHECKPOINTS = (0, 25, 50, 100, 200, 300, 500)
RIGHT_FIRST_TIME_OVER = 1_000
#: The issue's table (today's policy, measured from outside), in %.
ISSUE_TABLE: dict[str, dict[str, float]] = {
    "embedding": {"0": 49.1, "50": 77.5, "100": 83.7, "200": 88.2, "300": 92.7, "full": 97.9},
    "tfidf": {"0": 39.5, "50": 68.7, "100": 75.4, "200": 82.9, "300": 88.5, "full": 97.1},
}
#: Goals (embedding learner, start (a)): absolute accuracy, or a share of full-data accuracy.
GOALS = {"50": ("abs", 0.85), "100": ("abs", 0.90), "200": ("rel", 0.95), "500": ("rel", 0.98)}
VALIDATION_SHARE = 0.15
#: What the baseline policy is: today's habit (a retrain every 50 corrections, a fifth of the
#: corrections held out for good, no near-duplicates) with today's gate and learner, so only
#: the policy differs. The gate of the day the issue was filed (8970274: macro-F1 and recall
#: on the starter test set plus held-out corrections, no allowance for chance) is not re-run:
#: with held-out labels settling for a day it refuses the first retrain (at 50 corrections)
#: on the starter test set, a weaker baseline (78.5 % right first time at 15961e9) than this
#: one; before the settle rule it measured 80.5 % (bench/results/loop.md).
BASELINE_KIND = "same gate and learner as the loop: retrain every 50, a fifth held out"
CACHE = ROOT / "out" / "loop"
#: The taxonomy each start point begins from: (a) the default one, (b) one written for a bank's
#: support desk from the department mapping's label names (same departments, bank wording).
START_TAXONOMY = {"a": DEFAULT_TAXONOMY, "b": ROOT / "bench" / "taxonomies" / "bank_desk.toml"}
THRESHOLD_GRID = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)


class CachedEncoder:
    """The real sentence encoder behind a text -> vector cache kept in ``out/loop/``.

    Installed as the process's shared encoder for this benchmark only, so the learner, the
    model and the near-duplicate index run their real code on cached vectors.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        from classifier.learners import encoder

        CACHE.mkdir(parents=True, exist_ok=True)
        vectors_path, texts_path = CACHE / "vectors.npy", CACHE / "texts.json"
        known: list[str] = []
        vectors = np.zeros((0, 384), dtype=np.float32)
        if vectors_path.exists() and texts_path.exists():
            known = json.loads(texts_path.read_text())
            vectors = np.load(vectors_path)
        self._row = {text: i for i, text in enumerate(known)}
        missing = [t for t in dict.fromkeys(texts) if t not in self._row]
        self._real = encoder.shared_encoder()
        if missing:
            print(f"encoding {len(missing)} texts once (cached in {CACHE})", file=sys.stderr)
            vectors = np.vstack([vectors, self._real.encode(missing)])
            for text in missing:
                self._row[text] = len(self._row)
            np.save(vectors_path, vectors)
            texts_path.write_text(json.dumps([*known, *missing]))
        self._vectors = vectors
        self.dimension = self._real.dimension
        self.backend = f"cache over {getattr(self._real, 'backend', 'onnxruntime')}"
        self.misses = 0
        encoder._shared = self  # type: ignore[assignment]  # this benchmark only

    def encode(self, texts: Sequence[str]) -> Any:
        rows = [self._row.get(t, -1) for t in texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        hit = [i for i, r in enumerate(rows) if r >= 0]
        if hit:
            out[hit] = self._vectors[[rows[i] for i in hit]]
        miss = [i for i, r in enumerate(rows) if r < 0]
        if miss:
            self.misses += len(miss)
            out[miss] = self._real.encode([texts[i] for i in miss])
        return out


class StreamClock:
    """The benchmark's time: the n-th ticket arrives n / ``per_day`` days after the start.

    Retrains read "now" from it, so the rules that depend on time (a held-out label counts only
    once it has stood for a day; a daily retrain) see the stream's time, not the seconds the
    benchmark takes. Waiting (a job's heartbeat) is real.
    """

    def __init__(self, per_day: float) -> None:
        self.start = datetime.now(UTC) - timedelta(days=365)
        self.per_day = per_day
        self.tickets = 0

    def now(self) -> datetime:
        return self.start + timedelta(days=self.tickets / self.per_day)

    def monotonic(self) -> float:
        return self.tickets / self.per_day * 86_400

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Policy:
    """How the loop is run: when to retrain, what is held out, whether corrections count at once."""

    name: str
    schedule: RetrainSchedule
    settings: dict[str, Any]
    near_duplicates: bool
    #: Near-duplicate index settings other than the bot's (``NearDuplicateIndex`` keywords).
    index_settings: dict[str, Any] = field(default_factory=dict)
    #: The team's vote (``classifier.near_duplicates``): off for the baseline; the bot's
    #: settings for the learner unless given (``weight``, ``neighbours``, ``temperature``).
    vote: bool = False
    vote_settings: dict[str, float] = field(default_factory=dict)


@dataclass
class LoopRun:
    """What one policy did on the stream."""

    policy: str
    curve: dict[str, float] = field(default_factory=dict)
    model_curve: dict[str, float] = field(default_factory=dict)
    right_first_time: float = 0.0
    tickets: int = 0
    corrections: int = 0
    retrains: int = 0
    promoted: int = 0
    retrain_cpu_seconds: float = 0.0
    routed_by_correction: int = 0
    routed_by_correction_right: int = 0
    refusals: list[str] = field(default_factory=list)
    #: For --choose-threshold: per checkpoint, the validation tickets' model label and nearest
    #: correction (label, similarity); per streamed ticket, the same before it was corrected.
    validation: dict[str, list[tuple[str, str | None, float]]] = field(default_factory=dict)
    stream_trace: list[tuple[str, str, str | None, float]] = field(default_factory=list)
    #: Per streamed ticket: the routed answer's confidence, and whether it was right.
    outcomes: list[tuple[float, bool]] = field(default_factory=list)
    #: Per streamed ticket (``--trace``): its text, true label, the model's probability of
    #: each label, the routed label, and whether it was corrected.
    trace: list[dict[str, Any]] = field(default_factory=list)


async def run_loop(
    policy: Policy,
    learner: str,
    stream: Sequence[Example],
    test: Sequence[Example],
    validation: Sequence[Example] = (),
    *,
    seed: int = 0,
    until: int = CHECKPOINTS[-1],
    max_tickets: int | None = None,
    per_day: float = 100.0,
    taxonomy_path: Path = DEFAULT_TAXONOMY,
) -> LoopRun:
    """Stream tickets through the real correction, retrain and promotion code under ``policy``."""
    run = LoopRun(policy.name)
    taxonomy = load_taxonomy(taxonomy_path)
    vectorise, threshold, young = features_for(learner)
    index = NearDuplicateIndex(
        vectorise,
        **{"threshold": threshold, "young_threshold": young, **policy.index_settings},
    )
    clock = StreamClock(per_day)
    vote = {
        "weight": vote_weight_for(learner) if policy.vote else 0.0,
        "neighbours": VOTE_NEIGHBOURS,
        "temperature": VOTE_TEMPERATURE,
        "floor": VOTE_FLOOR,
        "full_at": VOTE_FULL_AT,
        **(policy.vote_settings if policy.vote else {}),
    }
    #: Tickets routed right and not corrected, waiting to count as confirmed (the bot's rule).
    unconfirmed: list[tuple[datetime, CorrectedTicket]] = []

    def routed_with_vote(predictions: list[Any], texts: Sequence[str]) -> list[Any]:
        if vote["weight"] <= 0.0:
            return predictions
        votes = index.vote(
            texts,
            neighbours=int(vote["neighbours"]),
            temperature=vote["temperature"],
            floor=vote["floor"],
        )
        weight = index.vote_weight(vote["weight"], int(vote["full_at"]))
        return [blended(p, v, weight) for p, v in zip(predictions, votes, strict=True)]

    with tempfile.TemporaryDirectory(prefix="triage-loop-") as tmp:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'loop.db'}",
            learner=learner,
            seed=seed,
            taxonomy=taxonomy_path,
            log_level="WARNING",
            **policy.settings,
        )
        confirm_after = timedelta(hours=settings.confirm_after_hours)
        db = Database(settings.database_url)
        await db.start()
        active: list[TrainedModel] = []

        def activated(_registry_id: int, model: TrainedModel) -> None:
            active[:] = [model]

        ctx = replace(
            build_admin_context(
                settings,
                db,
                taxonomy,
                # The cached encoder above is the vector cache here: no file per retrain.
                replace(learner_context(settings, taxonomy), vector_cache=None),
                on_model_activated=activated,
                baseline=lambda: None,
                clock=clock,
            ),
            train_out_of_process=None,
            poll_seconds=5.0,
        )

        async def retrain_now() -> None:
            started = time.process_time()
            outcome = await retrain(ctx, RetrainRequest(learner=learner, requested_by="auto"))
            run.retrain_cpu_seconds += time.process_time() - started
            run.retrains += 1
            if outcome.status == "promoted":
                run.promoted += 1
            elif outcome.status != "promoted" and run.corrections:
                run.refusals.append(f"{run.corrections}: {outcome.status} {outcome.message}")

        async def checkpoint(count: int) -> None:
            model = active[0]
            raw = await model.predict([e.text for e in test])
            truth = [e.label for e in test]
            run.model_curve[str(count)] = _accuracy([p.label for p in raw], truth)
            predicted = [p.label for p in routed_with_vote(raw, [e.text for e in test])]
            if policy.near_duplicates:
                matches = index.nearest([e.text for e in test])
                predicted = [m.label if m else p for m, p in zip(matches, predicted, strict=True)]
            run.curve[str(count)] = _accuracy(predicted, truth)
            print(
                f"{policy.name}: {count} corrections, {run.tickets} tickets, accuracy "
                f"{run.curve[str(count)]:.1%}, {run.retrains} retrains ({run.promoted} promoted)",
                file=sys.stderr,
                flush=True,
            )
            if validation:
                texts = [e.text for e in validation]
                labels = [p.label for p in await model.predict(texts)]
                found = index.similarities(texts)
                run.validation[str(count)] = [
                    (label, f[0].label if f else None, f[1] if f else 0.0)
                    for label, f in zip(labels, found, strict=True)
                ]

        await retrain_now()  # the first model: starter data only, through the real job
        run.retrains, run.retrain_cpu_seconds = 0, 0.0
        await checkpoint(0)
        seen = 0
        last_retrain_at = clock.now()
        right_first = 0
        for number, example in enumerate(stream):
            if run.corrections >= until and number >= RIGHT_FIRST_TIME_OVER:
                break
            if max_tickets is not None and number >= max_tickets:
                break
            run.tickets += 1
            clock.tickets = number
            if policy.schedule.due(
                run.corrections, seen=seen, last_retrain_at=last_retrain_at, now=clock.now()
            ):  # the daily rule (the count rule answers right after a correction)
                seen, last_retrain_at = run.corrections, clock.now()
                await retrain_now()
            while unconfirmed and clock.now() - unconfirmed[0][0] >= confirm_after:
                index.add([unconfirmed.pop(0)[1]])
            raw = (await active[0].predict([example.text]))[0]
            prediction = routed_with_vote([raw], [example.text])[0]
            model_label = prediction.label
            routed, confidence = model_label, prediction.confidence
            found = index.similarities([example.text])[0]
            run.stream_trace.append(
                (
                    example.label,
                    model_label,
                    found[0].label if found else None,
                    found[1] if found else 0.0,
                )
            )
            if policy.near_duplicates and found and found[1] >= index.threshold - 1e-6:
                if found[0].label != model_label:
                    routed, confidence = found[0].label, found[1]
                run.routed_by_correction += 1
                run.routed_by_correction_right += routed == example.label
            run.outcomes.append((confidence, routed == example.label))
            run.trace.append(
                {
                    "text": example.text,
                    "truth": example.label,
                    "probabilities": dict(raw.ranking),
                    "routed": routed,
                    "corrections": run.corrections,
                    "retrains": run.retrains,
                }
            )
            if number < RIGHT_FIRST_TIME_OVER:
                right_first += routed == example.label
            async with db.transaction() as conn:
                # Every ticket is stored and carded where it was routed, at the stream's time,
                # as the bot does; the ones nobody corrects count as confirmed after a while.
                ticket, _ = await store_ticket(
                    conn,
                    NewTicket("T0LOOP", "C0SUPPORT", f"{number}.000100", "U0ASKER", example.text),
                )
                await conn.execute(
                    tickets.update()
                    .where(tickets.c.id == ticket.id)
                    .values(status=ROUTED, created_at=clock.now())
                )
                await record_routing(
                    conn, ticket.id, kind=CARD, label=routed, channel=f"C0{routed}", ts="1.0"
                )
            if routed == example.label:
                if vote["weight"] > 0.0:
                    unconfirmed.append(
                        (
                            clock.now(),
                            CorrectedTicket(ticket.id, example.text, routed, "", confirmed=True),
                        )
                    )
                continue
            async with db.transaction() as conn:
                await record_correction(
                    conn,
                    ticket.id,
                    user="U0AGENT",
                    from_label=routed,
                    to_label=example.label,
                    via="reaction",
                )
                await sync_training_example(conn, ticket.id, example.text)
                # The correction was made at the stream's time (the holdout's week counts it).
                await conn.execute(
                    corrections.update()
                    .where(corrections.c.ticket_id == ticket.id)
                    .values(created_at=clock.now())
                )
            index.add([CorrectedTicket(ticket.id, example.text, example.label, "U0AGENT")])
            run.corrections += 1
            if policy.schedule.due(run.corrections, seen=seen):
                seen, last_retrain_at = run.corrections, clock.now()
                await retrain_now()
            if run.corrections in CHECKPOINTS:
                await checkpoint(run.corrections)
        run.right_first_time = right_first / min(RIGHT_FIRST_TIME_OVER, max(1, run.tickets))
        await db.close()
    return run


def _accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / max(1, len(truth))


async def full_accuracy(
    learner: str, train: Sequence[Example], test: Sequence[Example], seed: int
) -> float:
    """The learner on the starter data plus the whole training split (cached per learner)."""
    path = CACHE / f"full-{learner}-{seed}.json"
    if path.exists():
        return float(json.loads(path.read_text())["accuracy"])
    taxonomy = load_taxonomy(DEFAULT_TAXONOMY)
    model = await get_learner(learner, LearnerContext(taxonomy=taxonomy)).train(
        [*read_starter((STARTER_TRAIN,)), *train], taxonomy.labels, seed=seed
    )
    predicted = [p.label for p in await model.predict([e.text for e in test])]
    accuracy = _accuracy(predicted, [e.label for e in test])
    path.parent.mkdir(parents=True, exist_ok=True)  # the light learner never made the folder
    path.write_text(json.dumps({"accuracy": accuracy}))
    return accuracy


def policies(
    names: Sequence[str],
    *,
    near_duplicates: bool = True,
    overrides: Sequence[str] = (),
    schedule: RetrainSchedule | None = None,
    index_settings: Sequence[str] = (),
    vote_settings: Sequence[str] = (),
) -> list[Policy]:
    """The loop policy (the bot's defaults, or ``overrides``, ``schedule`` and
    ``index_settings``) and today's baseline."""
    settings = dict(item.split("=", 1) for item in overrides)
    index = {
        k: float(v) if "." in v else int(v) for k, v in (i.split("=", 1) for i in index_settings)
    }
    known = {
        "loop": Policy(
            "loop",
            schedule or RetrainSchedule(),
            settings,
            near_duplicates,
            index,
            vote=near_duplicates,
            vote_settings={k: float(v) for k, v in (i.split("=", 1) for i in vote_settings)},
        ),
        "baseline": Policy(
            "baseline", EVERY_50, {"holdout_cap": None, "confirm_after_hours": 0}, False
        ),
    }
    return [known[name] for name in names]


def choose_threshold(run: LoopRun) -> dict[str, Any]:
    """Score each similarity threshold on the validation slice and the stream (no test data)."""
    rows: dict[str, Any] = {}
    for threshold in (*THRESHOLD_GRID, 2.0):
        per_checkpoint = {}
        for count, entries in run.validation.items():
            right = 0
            for (model_label, nn_label, similarity), truth in zip(
                entries, run.validation_truth, strict=True
            ):
                chosen = nn_label if nn_label and similarity >= threshold else model_label
                right += chosen == truth
            per_checkpoint[count] = right / len(entries)
        stream = run.stream_trace[:RIGHT_FIRST_TIME_OVER]
        rft = sum(
            (nn if nn and sim >= threshold else model) == truth for truth, model, nn, sim in stream
        ) / max(1, len(stream))
        rows["off" if threshold > 1 else f"{threshold:.2f}"] = {
            "validation": per_checkpoint,
            "right_first_time": rft,
        }
    return rows


def print_threshold_table(rows: dict[str, Any]) -> None:
    counts = list(next(iter(rows.values()))["validation"])
    print("\nNear-duplicate threshold on the validation slice (accuracy after N corrections)")
    print("| threshold | " + " | ".join(counts) + " | right first time (stream) |")
    print("|---|" + "---|" * (len(counts) + 1))
    for name, row in rows.items():
        cells = " | ".join(f"{row['validation'][c]:.1%}" for c in counts)
        print(f"| {name} | {cells} | {row['right_first_time']:.1%} |")


def print_table(learner: str, runs: Sequence[LoopRun], full: float) -> None:
    issue = ISSUE_TABLE.get(learner, {})
    head = [str(c) for c in CHECKPOINTS]
    print(f"\nAccuracy on BANKING77's test split after N corrections ({learner} learner)")
    print("| corrections | " + " | ".join(head) + " | full training data |")
    print("|---|" + "---|" * (len(head) + 1))
    cells = " | ".join(f"{issue[c]:.1f} %" if c in issue else "-" for c in head)
    print(f"| issue's table (today's policy) | {cells} | {issue.get('full', 0):.1f} % |")
    for run in runs:
        for name, curve in (
            (run.policy, run.curve),
            (f"{run.policy}, model alone", run.model_curve),
        ):
            if name.endswith("model alone") and run.curve == run.model_curve:
                continue
            cells = " | ".join(f"{curve[c]:.1%}" if c in curve else "-" for c in head)
            print(f"| {name} (this run) | {cells} | {full:.1%} |")
    print()
    for run in runs:
        nn = (
            f"; {run.routed_by_correction} routed by a near-duplicate correction "
            f"({run.routed_by_correction_right} right)"
            if run.routed_by_correction
            else ""
        )
        print(
            f"{run.policy}: right first time {run.right_first_time:.1%} of the first "
            f"{min(RIGHT_FIRST_TIME_OVER, run.tickets)} tickets; {run.tickets} tickets, "
            f"{run.corrections} corrections, {run.retrains} retrains ({run.promoted} promoted), "
            f"{run.retrain_cpu_seconds:.1f} CPU s retraining{nn}"
        )
        print(f"  {run.policy}: wrong answers per 100 tickets: {wrong_per_hundred(run)}")
        for refusal in run.refusals[:10]:
            print(f"  not promoted after {refusal}")


def wrong_per_hundred(run: LoopRun) -> str:
    """How many of each 100 streamed tickets (of the first 1,000) were routed wrong."""
    stream = run.outcomes[:RIGHT_FIRST_TIME_OVER]
    return " ".join(
        str(sum(not right for _, right in stream[i : i + 100])) for i in range(0, len(stream), 100)
    )


def triage_figures(run: LoopRun, fixed: float, target: float) -> dict[str, float]:
    """Over the first 1,000 streamed tickets: the share sent to triage and how often those and
    the others were right, with the fixed threshold and with the one fitted on the outcomes so
    far (refitted every 50 tickets, as the bot refits every few minutes)."""
    stream = run.outcomes[:RIGHT_FIRST_TIME_OVER]
    fitted, adaptive = fixed, []
    for number, outcome in enumerate(stream):
        if number % 50 == 0:
            fitted = adaptive_threshold(stream[:number], fallback=fixed, target=target)
        adaptive.append(outcome[0] < fitted)
    out: dict[str, float] = {"threshold_last": fitted}
    for name, sent in (("fixed", [c < fixed for c, _ in stream]), ("adaptive", adaptive)):
        asked = [right for (_, right), s in zip(stream, sent, strict=True) if s]
        routed = [right for (_, right), s in zip(stream, sent, strict=True) if not s]
        out[f"{name}_share"] = len(asked) / max(1, len(stream))
        out[f"{name}_right_in_triage"] = sum(asked) / max(1, len(asked))
        out[f"{name}_right_routed"] = sum(routed) / max(1, len(routed))
        out[f"{name}_wrong_caught"] = (len(asked) - sum(asked)) / max(
            1, len(stream) - sum(r for _, r in stream)
        )
    return out


def print_triage(figures: dict[str, float], fixed: float, target: float) -> None:
    print(f"\nTriage channel over the first {RIGHT_FIRST_TIME_OVER} tickets (loop policy):")
    for name, label in (("fixed", f"fixed {fixed:.2f}"), ("adaptive", f"fitted, target {target}")):
        print(
            f"  {label}: {figures[name + '_share']:.1%} of tickets sent to triage, right there "
            f"{figures[name + '_right_in_triage']:.1%} (routed directly: "
            f"{figures[name + '_right_routed']:.1%}); {figures[name + '_wrong_caught']:.1%} of "
            "the wrong answers caught"
        )
    print(f"  last fitted threshold {figures['threshold_last']:.2f}")


def print_goals(run: LoopRun, baseline: LoopRun | None, full: float) -> None:
    print("\nGoals (loop policy):")
    for count, (kind, goal) in GOALS.items():
        got = run.curve.get(count)
        if got is None:
            print(f"  after {count}: not reached in this stream")
            continue
        target = goal if kind == "abs" else goal * full
        what = f"{goal:.0%}" if kind == "abs" else f"{goal:.0%} of full = {target:.1%}"
        print(f"  after {count}: {got:.1%} (goal {what}) {'MET' if got >= target else 'NOT MET'}")
    if baseline is not None:
        print(f"  baseline: {BASELINE_KIND}")
        gain = run.right_first_time - baseline.right_first_time
        verdict = "MET" if gain >= 0.10 - 1e-9 else "NOT MET"
        print(
            f"  right first time: +{gain * 100:.1f} points over the baseline (goal +10) {verdict}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="the shared datasets folder")
    parser.add_argument("--learner", default="embedding", choices=("embedding", "tfidf"))
    parser.add_argument("--start", default="a", choices=("a", "b"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policies", default="loop,baseline")
    parser.add_argument(
        "--per-day", type=float, default=100.0, help="tickets a day (the stream's clock)"
    )
    parser.add_argument("--choose-threshold", action="store_true")
    parser.add_argument(
        "--until",
        type=int,
        default=CHECKPOINTS[-1],
        help="stop a policy after this many corrections (once 1,000 tickets have streamed); "
        "later checkpoints are then not measured",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="a setting of the loop policy (e.g. holdout_cap=100), to compare variants",
    )
    parser.add_argument(
        "--tickets",
        type=int,
        default=None,
        help="stop each policy after this many streamed tickets (for quicker comparisons)",
    )
    parser.add_argument(
        "--choosing-stream",
        type=int,
        default=None,
        metavar="SEED",
        help="stream instead the training tickets the benchmark streams after its first "
        f"{RIGHT_FIRST_TIME_OVER:,}, shuffled with SEED, and score the curve on the validation "
        "slice, not the test split: to choose settings on data the benchmark does not report",
    )
    parser.add_argument(
        "--young",
        default=None,
        help="the loop's young retrain milestones, e.g. 1,2,3,5 (default: the bot's)",
    )
    parser.add_argument("--every", type=int, default=None, help="the loop's later interval")
    parser.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="KEYWORD=VALUE",
        help="a near-duplicate index setting of the loop policy (e.g. young_threshold=0.6)",
    )
    parser.add_argument(
        "--vote",
        action="append",
        default=[],
        metavar="KEYWORD=VALUE",
        help="a setting of the loop policy's team vote: weight (0 = off), neighbours, "
        "temperature, floor, full_at (default: the bot's)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="FILE",
        help="write each policy's per-ticket trace (text, truth, the model's probabilities, "
        "the routed label) to FILE as JSON, to study routing levers offline",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    schedule = None
    if args.young is not None or args.every is not None:
        default = RetrainSchedule()
        schedule = RetrainSchedule(
            young=tuple(int(x) for x in args.young.split(",") if x)
            if args.young is not None
            else default.young,
            every=args.every or default.every,
        )

    folder = find_datasets(args.datasets) / "banking77"
    train = read_banking77(folder, "train")
    test = read_banking77(folder, "test")
    order = list(range(len(train)))
    random.Random(args.seed).shuffle(order)
    cut = int(len(order) * VALIDATION_SHARE)
    validation = [train[i] for i in order[:cut]]
    stream = [train[i] for i in order[cut:]]
    if args.choosing_stream is not None:
        # Never the benchmark's first 1,000 tickets, never its validation slice, never test.
        stream = stream[RIGHT_FIRST_TIME_OVER:]
        random.Random(args.choosing_stream).shuffle(stream)
        test = validation
    if args.learner == "embedding":
        starter = [*read_starter((STARTER_TRAIN,)), *read_starter((STARTER_TEST,))]
        CachedEncoder([e.text for e in (*train, *test, *starter)])

    if args.choose_threshold:
        policy = policies(["loop"], near_duplicates=False, overrides=args.set)[0]
        run = await run_loop(
            policy,
            args.learner,
            stream,
            validation[:1000],
            validation[:1000],
            per_day=args.per_day,
        )
        run.validation_truth = [e.label for e in validation[:1000]]  # type: ignore[attr-defined]
        rows = choose_threshold(run)
        print_threshold_table(rows)
        print(json.dumps({"learner": args.learner, "thresholds": rows}))
        return

    full = (
        await full_accuracy(args.learner, train, test, args.seed)
        if args.choosing_stream is None
        else 0.0  # the full-data model would have seen the validation slice
    )
    taxonomy_path = START_TAXONOMY[args.start]
    runs = [
        await run_loop(
            policy,
            args.learner,
            stream,
            test,
            seed=args.seed,
            per_day=args.per_day,
            taxonomy_path=taxonomy_path,
            until=args.until,
            max_tickets=args.tickets,
        )
        for policy in policies(
            args.policies.split(","),
            overrides=args.set,
            schedule=schedule,
            index_settings=args.index,
            vote_settings=args.vote,
        )
    ]
    if args.trace is not None:
        args.trace.write_text(json.dumps({run.policy: run.trace for run in runs}))
    print_table(args.learner, runs, full)
    by_name = {run.policy: run for run in runs}
    loop = by_name.get("loop", runs[0])
    baseline = by_name.get("baseline")
    print_goals(loop, baseline, full)
    settings = Settings()
    triage = triage_figures(loop, settings.confidence_threshold, settings.triage_target)
    print_triage(triage, settings.confidence_threshold, settings.triage_target)
    print(
        json.dumps(
            {
                "learner": args.learner,
                "start": args.start,
                "curve": {k: round(v, 4) for k, v in loop.curve.items()},
                "model_curve": {k: round(v, 4) for k, v in loop.model_curve.items()},
                "full": round(full, 4),
                "right_first_time": round(loop.right_first_time, 4),
                "baseline_right_first_time": round(baseline.right_first_time, 4)
                if baseline
                else None,
                "baseline_kind": BASELINE_KIND,
                # The issue's own policy as filed (the gate of 8970274 on the starter test set
                # plus held-out corrections) is not re-run here: see BASELINE_KIND.
                "baseline_as_filed_right_first_time": None,
                "baseline_curve": {k: round(v, 4) for k, v in baseline.curve.items()}
                if baseline
                else None,
                "retrains": loop.retrains,
                "retrain_cpu_seconds": round(loop.retrain_cpu_seconds, 1),
                "triage": {k: round(v, 4) for k, v in triage.items()},
                "baseline_retrains": baseline.retrains if baseline else None,
                "baseline_retrain_cpu_seconds": round(baseline.retrain_cpu_seconds, 1)
                if baseline
                else None,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
