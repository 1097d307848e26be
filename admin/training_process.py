"""Training a local model in a child process, so the bot's event loop keeps its CPU.

Local training is CPU-bound Python (tokenising, n-grams) that holds the GIL: run in a thread it
starves the threads that serve tickets (the database driver's, the classifier's), and routing
latency climbs from milliseconds to seconds. A child process has its own interpreter. It is
cancellable (killed), reports progress as JSON lines on stderr and writes the artefact to a
file; the parent loads it back. Given a holdout (and the active model), the child also
predicts it with the new model (and the active one), so the retrain's heaviest inference runs
there too; the parent only scores the labels. Given the team's examples and the tickets the bot
has seen (``blend``), the child also blends the taxonomy in
(``admin.taxonomy_training.learner_input``): the embedding learner's self-labelling encodes
every training text and up to ``UNLABELLED_TICKETS`` tickets, which in the bot's process held
its shared sentence encoder, and the routing of live tickets, for most of a minute.

    python -m admin.training_process [--vector-cache DIR] [--blend-taxonomy UNLABELLED.json] \
        LEARNER TAXONOMY SEED EXAMPLES.jsonl LABELS OUT \
        [HOLDOUT.jsonl ACTIVE.triage|- PREDICTIONS.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from classifier.errors import TrainingError
from classifier.examples import Example, read_examples, write_examples
from classifier.protocols import ProgressCallback, ProgressEvent, no_progress

_PROGRESS = "progress "
#: The optional first argument: the folder of the embedding learner's vector cache.
VECTOR_CACHE_FLAG = "--vector-cache"
#: The optional argument after it: blend the taxonomy into the examples here, self-labelling
#: the texts in this JSON file (a list of strings).
BLEND_FLAG = "--blend-taxonomy"
_ERROR = "error "


@dataclass(frozen=True)
class ChildTraining:
    """What the child produced: the artefact, and holdout predictions by role when asked."""

    artefact: bytes
    #: "candidate" / "active" -> one predicted label per holdout example, in order.
    predictions: dict[str, list[str]] = field(default_factory=dict)


async def train_in_subprocess(
    learner: str,
    taxonomy: Path,
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    seed: int = 0,
    progress: ProgressCallback = no_progress,
    holdout: Sequence[Example] = (),
    active_artefact: bytes | None = None,
    vector_cache: Path | None = None,
    blend: Sequence[str] | None = None,
) -> ChildTraining:
    """Train ``learner`` on ``examples`` in a child process (and predict ``holdout``).

    ``blend``: ``examples`` are the team's alone; the child blends the taxonomy in, with these
    tickets to self-label (see the module docstring). None: ``examples`` are final.

    Raises TrainingError with the child's message if training fails there.
    """
    with tempfile.TemporaryDirectory(prefix="triage-train-") as tmp:
        folder = Path(tmp)
        await asyncio.to_thread(write_examples, folder / "examples.jsonl", examples)
        out = folder / "model.triage"
        extra: list[str] = []
        flags = [VECTOR_CACHE_FLAG, str(vector_cache)] if vector_cache is not None else []
        if blend is not None:
            unlabelled = folder / "unlabelled.json"
            await asyncio.to_thread(unlabelled.write_text, json.dumps(list(blend)), "utf-8")
            flags += [BLEND_FLAG, str(unlabelled)]
        if holdout:
            await asyncio.to_thread(write_examples, folder / "holdout.jsonl", holdout)
            active = "-"
            if active_artefact is not None:
                await asyncio.to_thread((folder / "active.triage").write_bytes, active_artefact)
                active = str(folder / "active.triage")
            extra = [str(folder / "holdout.jsonl"), active, str(folder / "predictions.json")]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "admin.training_process",
            *flags,
            learner,
            str(taxonomy),
            str(seed),
            str(folder / "examples.jsonl"),
            json.dumps(list(labels)),
            str(out),
            *extra,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        error = ""
        try:
            assert process.stderr is not None
            async for raw in process.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                if line.startswith(_PROGRESS):
                    event = json.loads(line[len(_PROGRESS) :])
                    progress(ProgressEvent("train", event["message"], event["fraction"]))
                elif line.startswith(_ERROR):
                    error = line[len(_ERROR) :]
            code = await process.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if code != 0:
            raise TrainingError(error or f"Training stopped unexpectedly (exit code {code}).")
        artefact = await asyncio.to_thread(out.read_bytes)
        predictions: dict[str, list[str]] = {}
        if extra:
            text = await asyncio.to_thread(Path(extra[2]).read_text, encoding="utf-8")
            predictions = json.loads(text)
        return ChildTraining(artefact, predictions)


def _child(argv: list[str]) -> int:
    from classifier.artifacts import load_model, unpack
    from classifier.errors import ClassifierError
    from classifier.learners import LearnerContext, get_learner
    from classifier.protocols import Learner, WarmStartLearner
    from classifier.taxonomy import load_taxonomy

    vector_cache: Path | None = None
    if argv[:1] == [VECTOR_CACHE_FLAG]:
        vector_cache, argv = Path(argv[1]), argv[2:]
    blend: list[str] | None = None
    if argv[:1] == [BLEND_FLAG]:
        blend, argv = json.loads(Path(argv[1]).read_text(encoding="utf-8")), argv[2:]
    name, taxonomy_path, seed, examples_path, labels_json, out = argv[:6]
    # Background work: whenever the bot needs the CPU, it gets it first.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)

    def report(event: ProgressEvent) -> None:
        record = {"message": event.message, "fraction": event.fraction}
        print(_PROGRESS + json.dumps(record), file=sys.stderr, flush=True)

    try:
        taxonomy = load_taxonomy(Path(taxonomy_path))
        context = LearnerContext(taxonomy=taxonomy, seed=int(seed), vector_cache=vector_cache)
        learner: Learner = get_learner(name, context)
        if len(argv) == 9 and argv[7] != "-" and isinstance(learner, WarmStartLearner):
            # Warm start from the model this one may replace (e.g. its chosen configuration).
            learner = learner.warm_started(unpack(Path(argv[7]).read_bytes()).meta)
        examples = read_examples(Path(examples_path))
        if blend is not None:
            from admin.taxonomy_training import learner_input
            from classifier.taxonomy_learning import encoder_for

            given = learner_input(
                name, examples, taxonomy, unlabelled=blend, encode=encoder_for(learner)
            )
            examples = list(given.examples)
        model = asyncio.run(
            learner.train(examples, json.loads(labels_json), seed=int(seed), progress=report)
        )
        Path(out).write_bytes(model.to_bytes())
        if len(argv) == 9:
            holdout_path, active_path, predictions_out = argv[6:]
            texts = [e.text for e in read_examples(Path(holdout_path))]
            models = {"candidate": model}
            if active_path != "-":
                models["active"] = load_model(Path(active_path).read_bytes())
            predicted = {
                role: [p.label for p in asyncio.run(each.predict(texts))]
                for role, each in models.items()
            }
            Path(predictions_out).write_text(json.dumps(predicted), encoding="utf-8")
    except ClassifierError as exc:
        print(_ERROR + str(exc).replace("\n", " "), file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
