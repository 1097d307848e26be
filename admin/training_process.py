"""Training a local model in a child process, so the bot's event loop keeps its CPU.

Local training is CPU-bound Python (tokenising, n-grams) that holds the GIL: run in a thread it
starves the threads that serve tickets (the database driver's, the classifier's), and routing
latency climbs from milliseconds to seconds. A child process has its own interpreter. It is
cancellable (killed), reports progress as JSON lines on stderr and writes the artefact to a
file; the parent loads it back.

    python -m admin.training_process LEARNER TAXONOMY SEED EXAMPLES.jsonl LABELS OUT
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from classifier.errors import TrainingError
from classifier.examples import Example, read_examples, write_examples
from classifier.model import ProgressCallback, ProgressEvent, no_progress

_PROGRESS = "progress "
_ERROR = "error "


async def train_in_subprocess(
    learner: str,
    taxonomy: Path,
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    seed: int = 0,
    progress: ProgressCallback = no_progress,
) -> bytes:
    """Train ``learner`` on ``examples`` in a child process; the model artefact's bytes.

    Raises TrainingError with the child's message if training fails there.
    """
    with tempfile.TemporaryDirectory(prefix="triage-train-") as tmp:
        folder = Path(tmp)
        await asyncio.to_thread(write_examples, folder / "examples.jsonl", examples)
        out = folder / "model.triage"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "admin.training_process",
            learner,
            str(taxonomy),
            str(seed),
            str(folder / "examples.jsonl"),
            json.dumps(list(labels)),
            str(out),
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
        return await asyncio.to_thread(out.read_bytes)


def _child(argv: list[str]) -> int:
    from classifier.errors import ClassifierError
    from classifier.learners import LearnerContext, get_learner
    from classifier.taxonomy import load_taxonomy

    name, taxonomy_path, seed, examples_path, labels_json, out = argv
    # Background work: whenever the bot needs the CPU, it gets it first.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)

    def report(event: ProgressEvent) -> None:
        record = {"message": event.message, "fraction": event.fraction}
        print(_PROGRESS + json.dumps(record), file=sys.stderr, flush=True)

    try:
        taxonomy = load_taxonomy(Path(taxonomy_path))
        learner = get_learner(name, LearnerContext(taxonomy=taxonomy, seed=int(seed)))
        examples = read_examples(Path(examples_path))
        model = asyncio.run(
            learner.train(examples, json.loads(labels_json), seed=int(seed), progress=report)
        )
        Path(out).write_bytes(model.to_bytes())
    except ClassifierError as exc:
        print(_ERROR + str(exc).replace("\n", " "), file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
