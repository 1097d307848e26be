"""OpenAI fine-tuning (learner ``openai-finetune``): training file, job, following, the model.

The pieces, each usable alone:

* ``build_training_file`` validates examples and writes the seed's chat JSONL with the SHORT
  system prompt the fine-tune is later queried with.
* ``FineTuner.start`` uploads the file and creates the job, and returns the job id *before*
  anything waits on it, so a caller persists the id (the admin job in its database, the CLI in a
  state file) and ``FineTuner.follow(job_id)`` can be resumed after a restart.
* ``FineTunedClassifier`` is the resulting ``ft:...`` model behind the Classifier protocol.

Idempotency: the job carries metadata ``triage_request`` = hash of (training file, base model,
suffix, seed). Before creating a job -- and again before every retry of a creation that failed
in transit -- ``start`` looks for a live or finished job with that hash and reuses it, so a
lost response, a crash or a second ``start`` never creates a second job. Uploads are reused the
same way by file name (which carries the file's hash).

OpenAI is winding down self-serve fine-tuning (new organisations refused since 2026-05-07, all
from 2027-01-06; fine-tunes of gpt-4o-mini / gpt-4.1(-mini) stop serving on 2027-01-14). Such
refusals become ``FineTuneUnavailableError`` naming the alternatives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import openai
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from classifier.artifacts import pack
from classifier.errors import LLMError, ModelFormatError, TrainingError
from classifier.examples import Example, deduplicate, label_counts, to_chat_record
from classifier.json_value import JsonObject
from classifier.learners import LearnerContext
from classifier.llm.chat import (
    TOP_LOGPROBS,
    complete,
    fallback_label,
    predict_all,
    prediction_from,
)
from classifier.llm.client import (
    OpenAIClient,
    OpenAILearnerBase,
    client_config,
    is_transient,
    provider_message,
    require_client,
    translate_error,
)
from classifier.llm.errors import (
    FINE_TUNE_ALTERNATIVES,
    FineTuneInterruptedError,
    FineTuneJobError,
    FineTuneUnavailableError,
)
from classifier.llm.prompts import (
    FINETUNE_PROMPT_VERSION,
    finetune_messages,
    finetune_system_prompt,
)
from classifier.protocols import Prediction, ProgressCallback, ProgressEvent, no_progress

log = logging.getLogger(__name__)

KIND = "openai-finetune"
MIN_EXAMPLES = 10
#: OpenAI's per-example limit for gpt-4o-mini / gpt-4.1 fine-tuning (tokens).
MAX_EXAMPLE_TOKENS = 65_536
#: Warn when the largest department has more than this many times the smallest's examples.
IMBALANCE_RATIO = 3.0
REQUEST_KEY = "triage_request"
DATASET_KEY = "triage_dataset_sha256"
SELF_SERVE_END = dt.date(2027, 1, 6)
#: Rough progress per status, for a bar that moves before the first metrics arrive.
_STATUS_FRACTION = {"validating_files": 0.05, "queued": 0.1, "running": 0.2, "succeeded": 1.0}
_REFUSAL_CODES = frozenset(
    {"fine_tuning_not_available", "model_not_available", "not_eligible", "unsupported_model"}
)
_REFUSAL_TEXT = re.compile(
    r"not (?:eligible|available|allowed|supported)|no longer|deprecat|retired|shut ?down|"
    r"cannot be created|disabled",
    re.IGNORECASE,
)
_MODEL_REFUSAL = re.compile(r"\bmodel \S+ (?:is not available|does not exist)", re.IGNORECASE)


def approx_tokens(text: str) -> int:
    """A deliberately high token estimate (no tokenizer download): one per 3 UTF-8 bytes.

    English BPE averages about 4 characters per token; 3 bytes leaves margin, and scripts that
    need more bytes per character get proportionally more tokens.
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


@dataclass(frozen=True)
class TrainingFile:
    """A validated fine-tuning file and what was checked."""

    data: bytes
    sha256: str
    labels: tuple[str, ...]
    examples: tuple[Example, ...]
    counts: dict[str, int]
    approx_tokens: int
    max_example_tokens: int
    warnings: tuple[str, ...]

    @property
    def filename(self) -> str:
        """The upload's name; it carries the hash so a re-upload can be recognised."""
        return f"triage-{self.sha256[:16]}.jsonl"


def build_training_file(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    max_example_tokens: int = MAX_EXAMPLE_TOKENS,
) -> TrainingFile:
    """Validate ``examples`` and render them as chat JSONL with the fine-tuning system prompt.

    Raises TrainingError for: fewer than ``MIN_EXAMPLES`` distinct tickets, a department without
    examples, a label outside ``labels``, an example over the token limit. Warns (in
    ``warnings``) about removed duplicates and a strong label imbalance.
    """
    labels = tuple(labels)
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise TrainingError(
            f"The training data uses labels that are not departments: {', '.join(unknown)}; "
            "fix the data or the taxonomy."
        )
    unique = deduplicate(examples)
    warnings: list[str] = []
    if len(unique) < len(examples):
        warnings.append(
            f"{len(examples) - len(unique)} duplicate ticket(s) removed (the latest label kept)."
        )
    if len(unique) < MIN_EXAMPLES:
        raise TrainingError(
            f"Fine-tuning needs at least {MIN_EXAMPLES} distinct examples, got {len(unique)}; "
            "add data (triage generate) or use the prompted learner."
        )
    counts = label_counts(unique)
    missing = [label for label in labels if label not in counts]
    if missing:
        raise TrainingError(
            f"Every department needs training examples; none for: {', '.join(missing)}."
        )
    if max(counts.values()) > IMBALANCE_RATIO * min(counts.values()):
        warnings.append(
            "The departments are unbalanced ("
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + "); the fine-tune may favour the largest."
        )
    system = finetune_system_prompt(labels)
    lines: list[bytes] = []
    total = biggest = 0
    for number, example in enumerate(unique, start=1):
        record = to_chat_record(example, system)
        tokens = sum(approx_tokens(m["content"]) + 4 for m in record["messages"]) + 3
        if tokens > max_example_tokens:
            raise TrainingError(
                f"Example {number} ({example.text[:40]!r}...) is about {tokens} tokens, over "
                f"the {max_example_tokens}-token limit per example; shorten or drop it."
            )
        total += tokens
        biggest = max(biggest, tokens)
        # Same serialisation as classifier.examples.write_examples, so the bytes match it.
        lines.append((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    data = b"".join(lines)
    return TrainingFile(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        labels=labels,
        examples=tuple(unique),
        counts=counts,
        approx_tokens=total,
        max_example_tokens=biggest,
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class FineTuneResult:
    """A finished, successful job."""

    job_id: str
    fine_tuned_model: str
    base_model: str
    trained_tokens: int | None


@dataclass(frozen=True)
class JobStatus:
    """A job's state as the provider reports it."""

    job_id: str
    status: str
    base_model: str
    fine_tuned_model: str | None
    trained_tokens: int | None
    error: str | None

    @classmethod
    def of(cls, job: FineTuningJob) -> JobStatus:
        return cls(
            job.id,
            job.status,
            job.model,
            job.fine_tuned_model,
            job.trained_tokens,
            job.error.message if job.error is not None else None,
        )


#: States a job does not leave.
_ENDED = frozenset({"succeeded", "failed", "cancelled"})


def request_hash(training: TrainingFile, base_model: str, suffix: str | None, seed: int) -> str:
    """What identifies one fine-tuning request (the idempotency key stored as job metadata)."""
    key = json.dumps([training.sha256, base_model, suffix, seed]).encode("utf-8")
    return hashlib.sha256(key).hexdigest()[:32]


class FineTuner:
    """Starts, follows, resumes and cancels fine-tuning jobs on an OpenAI-compatible endpoint.

    ``sleep``, ``clock`` and ``today`` are injectable so tests and benchmarks do not wait.
    ``settle_seconds`` (default: the client timeout + 1 s) is how long a job creation that
    ended in a timeout or a 5xx is looked for before it is sent again.
    """

    def __init__(
        self,
        client: OpenAIClient,
        *,
        base_model: str | None = None,
        poll_interval: float = 15.0,
        create_attempts: int = 3,
        settle_seconds: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        self.client = client
        self.base_model = base_model or client.config.finetune_base_model
        self.poll_interval = poll_interval
        self.create_attempts = max(1, create_attempts)
        # How long to keep looking for a job whose creation ended in a timeout or a 5xx.
        self.settle_seconds = (
            settle_seconds if settle_seconds is not None else client.config.timeout_seconds + 1
        )
        self._sleep = sleep
        self._clock = clock
        self._today = today

    # ------------------------------------------------------------------ start

    async def find_job(self, request_key: str) -> FineTuningJob | None:
        """A job created for ``request_key`` that is live or succeeded, newest first."""
        try:
            page = await self.client.sdk.fine_tuning.jobs.list(
                metadata={REQUEST_KEY: request_key}, limit=100
            )
            seen = 0
            # The filter is checked again here: some compatible servers ignore it.
            async for job in page:
                seen += 1
                if (job.metadata or {}).get(REQUEST_KEY) == request_key and job.status not in {
                    "failed",
                    "cancelled",
                }:
                    return job
                if seen >= 1000:
                    break
        except openai.OpenAIError as exc:
            raise translate_error(exc, "looking for an existing fine-tuning job") from exc
        return None

    async def start(
        self,
        training: TrainingFile,
        *,
        suffix: str | None = "triage",
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> str:
        """Upload ``training`` and create the job (or reuse the one already made); its id."""
        key = request_hash(training, self.base_model, suffix, seed)
        existing = await self.find_job(key)
        if existing is not None:
            progress(ProgressEvent("fine-tune", f"reusing job {existing.id} ({existing.status})"))
            return existing.id
        progress(ProgressEvent("upload", f"uploading {len(training.examples)} examples", 0.0))
        file_id = await self._upload(training)
        progress(ProgressEvent("upload", f"uploaded {file_id}", 1.0))
        metadata = {REQUEST_KEY: key, DATASET_KEY: training.sha256}
        failure: openai.OpenAIError | None = None
        uncertain = False  # a failure after which the job may exist anyway
        for attempt in range(1, self.create_attempts + 1):
            try:
                job = await self.client.no_retry.fine_tuning.jobs.create(
                    model=self.base_model,
                    training_file=file_id,
                    suffix=suffix,
                    seed=seed,
                    metadata=metadata,
                )
            except openai.APIStatusError as exc:
                refusal = self._refusal(exc)
                if refusal is not None:
                    raise refusal from exc
                if not is_transient(exc):
                    raise translate_error(exc, "creating the fine-tuning job") from exc
                failure = exc
                # 429 is refused before any work; 5xx, 408 and 409 may come after the job exists.
                uncertain = uncertain or exc.status_code != 429
            except openai.APIConnectionError as exc:
                failure, uncertain = exc, True  # timeout or dropped connection: unknown outcome
            else:
                job_id = await self._keep_oldest(key, job.id) if uncertain else job.id
                progress(ProgressEvent("fine-tune", f"created job {job_id}", 0.0))
                return job_id
            # The request may have created the job before the answer was lost: look first.
            existing = await self._settle(key, uncertain, attempt)
            if existing is not None:
                progress(ProgressEvent("fine-tune", f"job {existing.id} was created", 0.0))
                return existing.id
            log.warning("Creating the fine-tuning job failed in transit (attempt %d)", attempt)
        assert failure is not None
        raise translate_error(failure, "creating the fine-tuning job") from failure

    async def _settle(self, key: str, uncertain: bool, attempt: int) -> FineTuningJob | None:
        """Wait before a retry; after an uncertain failure keep looking for the job meanwhile.

        A request that timed out may still be processed by the server, so for up to
        ``settle_seconds`` the job list is checked before anything is sent again.
        """
        await self._sleep(min(2.0**attempt, 30.0) * 0.5)
        deadline = self._clock() + (self.settle_seconds if uncertain else 0.0)
        while True:
            existing = await self.find_job(key)
            if existing is not None or self._clock() >= deadline:
                return existing
            await asyncio.sleep(min(1.0, max(0.05, self.settle_seconds / 10)))

    async def _keep_oldest(self, key: str, created: str) -> str:
        """After an uncertain failure and a successful retry: if both requests made a job,
        keep the oldest and cancel the others, so one request never leaves two jobs."""
        try:
            page = await self.client.sdk.fine_tuning.jobs.list(metadata={REQUEST_KEY: key})
            live = [
                job
                async for job in page
                if (job.metadata or {}).get(REQUEST_KEY) == key
                and job.status not in ("failed", "cancelled")
            ]
        except openai.OpenAIError as exc:
            log.warning("Could not check for duplicate jobs: %s", type(exc).__name__)
            return created
        if len(live) <= 1:
            return created
        live.sort(key=lambda job: (job.created_at, job.id))
        for duplicate in live[1:]:
            log.warning(
                "Cancelling duplicate fine-tuning job %s (keeping %s)", duplicate.id, live[0].id
            )
            await self.cancel(duplicate.id)
        return live[0].id

    async def _find_file(self, training: TrainingFile) -> str | None:
        try:
            page = await self.client.sdk.files.list(purpose="fine-tune", limit=100)
            seen = 0
            async for file in page:
                if file.filename == training.filename and file.bytes == len(training.data):
                    return file.id
                seen += 1
                if seen >= 1000:  # newest first; an older copy is not worth a long scan
                    break
        except openai.OpenAIError as exc:
            raise translate_error(exc, "looking for an uploaded training file") from exc
        return None

    async def _upload(self, training: TrainingFile) -> str:
        existing = await self._find_file(training)
        if existing is not None:
            return existing
        for attempt in range(1, self.create_attempts + 1):
            try:
                file = await self.client.no_retry.files.create(
                    file=(training.filename, training.data, "application/jsonl"),
                    purpose="fine-tune",
                )
            except openai.OpenAIError as exc:
                if not is_transient(exc) or attempt == self.create_attempts:
                    raise translate_error(exc, "uploading the training file") from exc
            else:
                return file.id
            await self._sleep(min(2.0**attempt, 30.0) * 0.5)
            existing = await self._find_file(training)
            if existing is not None:
                return existing
        raise AssertionError("unreachable")  # pragma: no cover

    def _refusal(self, exc: openai.APIStatusError) -> FineTuneUnavailableError | None:
        said = provider_message(exc)
        if exc.status_code not in (400, 403, 404) or not (
            exc.code in _REFUSAL_CODES or _REFUSAL_TEXT.search(said)
        ):
            return None
        log.warning("Fine-tuning refused: status=%s code=%s %s", exc.status_code, exc.code, said)
        if exc.code == "model_not_available" or _MODEL_REFUSAL.search(said):
            return FineTuneUnavailableError(
                f"The provider will not fine-tune {self.base_model} (it said: {said}); OpenAI "
                "retires fine-tuning of gpt-4o-mini and gpt-4.1(-mini) with those base models, "
                f"so set TRIAGE_OPENAI_FINETUNE_BASE_MODEL to one it offers, or "
                f"{FINE_TUNE_ALTERNATIVES}."
            )
        if self._today() >= SELF_SERVE_END:
            return FineTuneUnavailableError(
                "OpenAI ended self-serve fine-tuning on 2027-01-06, so no new fine-tuning job "
                f"can be created (it said: {said}); {FINE_TUNE_ALTERNATIVES}."
            )
        return FineTuneUnavailableError(
            f"This organisation may not create fine-tuning jobs (the provider said: {said}); "
            "since 2026-05-07 OpenAI only accepts jobs from organisations that have fine-tuned "
            f"before, so {FINE_TUNE_ALTERNATIVES}."
        )

    # ------------------------------------------------------------------ follow

    async def status(self, job_id: str) -> JobStatus:
        """The job's current state."""
        try:
            return JobStatus.of(await self.client.sdk.fine_tuning.jobs.retrieve(job_id))
        except openai.OpenAIError as exc:
            raise translate_error(exc, f"reading fine-tuning job {job_id}") from exc

    async def follow(
        self,
        job_id: str,
        *,
        progress: ProgressCallback = no_progress,
        max_wait: float | None = None,
    ) -> FineTuneResult:
        """Poll ``job_id`` until it ends, reporting its status and its own event messages.

        Returns the fine-tuned model on success; raises FineTuneJobError when the job failed or
        was cancelled, and FineTuneInterruptedError (resumable: the job goes on) when the
        endpoint stays unreachable or ``max_wait`` seconds pass.
        """
        deadline = None if max_wait is None else self._clock() + max_wait
        seen: set[str] = set()
        fraction = 0.0
        while True:
            try:
                job = await self.client.sdk.fine_tuning.jobs.retrieve(job_id)
            except openai.NotFoundError as exc:
                raise translate_error(exc, f"reading fine-tuning job {job_id}") from exc
            except openai.OpenAIError as exc:
                if not is_transient(exc):
                    raise translate_error(exc, f"reading fine-tuning job {job_id}") from exc
                log.warning("Lost contact while following %s: %s", job_id, type(exc).__name__)
                raise FineTuneInterruptedError(
                    f"Lost contact with the endpoint while following fine-tuning job {job_id}; "
                    f"the job goes on remotely, so resume it later (triage finetune resume "
                    f"{job_id}).",
                    job_id=job_id,
                ) from exc
            fraction = max(fraction, _STATUS_FRACTION.get(job.status, fraction))
            for event in await self._new_events(job_id, seen):
                data = event.data if isinstance(event.data, dict) else {}
                step, total = data.get("step"), data.get("total_steps")
                if isinstance(step, int | float) and isinstance(total, int | float) and total:
                    fraction = max(fraction, 0.2 + 0.75 * min(1.0, step / total))
                progress(ProgressEvent("fine-tune", event.message, fraction))
            message = f"{job.status}"
            if job.trained_tokens:
                message += f", {job.trained_tokens} trained tokens"
            progress(ProgressEvent("fine-tune", message, fraction))
            if job.status in _ENDED:
                await self.delete_files(job)
            if job.status == "succeeded" and job.fine_tuned_model:
                return FineTuneResult(job.id, job.fine_tuned_model, job.model, job.trained_tokens)
            if job.status in ("failed", "cancelled"):
                why = f": {job.error.message}" if job.error is not None else ""
                advice = (
                    "fix the training data and start a new job"
                    if job.status == "failed"
                    else "start a new job to try again"
                )
                raise FineTuneJobError(
                    f"Fine-tuning job {job_id} {job.status}{why}; {advice}.",
                    job_id=job_id,
                    status=job.status,
                )
            if deadline is not None and self._clock() >= deadline:
                raise FineTuneInterruptedError(
                    f"Stopped waiting for fine-tuning job {job_id} (still {job.status}); it goes "
                    f"on remotely, so resume it later (triage finetune resume {job_id}).",
                    job_id=job_id,
                )
            await self._sleep(self.poll_interval)

    async def _new_events(self, job_id: str, seen: set[str]) -> list[FineTuningJobEvent]:
        """Events not reported yet, oldest first (the API lists newest first)."""
        fresh: list[FineTuningJobEvent] = []
        try:
            page = await self.client.sdk.fine_tuning.jobs.list_events(job_id, limit=50)
            async for event in page:
                if event.id in seen or len(fresh) >= 500:
                    break
                fresh.append(event)
        except openai.OpenAIError as exc:
            # Events are commentary: the job's status is what matters, so carry on.
            log.warning("Could not read events of %s: %s", job_id, type(exc).__name__)
            return []
        seen.update(e.id for e in fresh)
        return list(reversed(fresh))

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel ``job_id``; a job that already ended is reported as it is."""
        try:
            job = await self.client.sdk.fine_tuning.jobs.cancel(job_id)
        except openai.BadRequestError:
            return await self.status(job_id)
        except openai.OpenAIError as exc:
            raise translate_error(exc, f"cancelling fine-tuning job {job_id}") from exc
        if job.status in _ENDED:
            await self.delete_files(job)
        return JobStatus.of(job)

    async def delete_files(self, job: FineTuningJob) -> list[str]:
        """Delete the files uploaded for ``job`` once it has ended (they hold tickets' text),
        unless a job still running uses them too; the ids deleted.

        A failure is logged, not raised: the job's outcome matters more, and the next ended
        job that uses the same file tries again.
        """
        files = {f for f in (job.training_file, job.validation_file) if f}
        try:
            seen = 0
            page = await self.client.sdk.fine_tuning.jobs.list(limit=100)
            async for other in page:
                if other.id != job.id and other.status not in _ENDED:
                    files -= {other.training_file, other.validation_file}
                seen += 1
                if seen >= 1000:
                    break
        except openai.OpenAIError as exc:
            log.warning("Kept the files of job %s: %s", job.id, type(exc).__name__)
            return []
        deleted = []
        for file_id in sorted(files):
            try:
                await self.client.sdk.files.delete(file_id)
            except openai.NotFoundError:
                pass  # deleted already
            except openai.OpenAIError as exc:
                log.warning(
                    "Could not delete file %s of job %s: %s", file_id, job.id, type(exc).__name__
                )
                continue
            deleted.append(file_id)
        if deleted:
            log.info("Deleted the uploaded files of fine-tuning job %s: %s", job.id, deleted)
        return deleted


# ---------------------------------------------------------------------- the fine-tuned model


class FineTunedClassifier:
    """A fine-tuned chat model queried with the short prompt it was trained on."""

    learner = KIND

    def __init__(
        self,
        client: OpenAIClient | None,
        model: str,
        labels: Sequence[str],
        *,
        base_model: str = "",
        job_id: str = "",
        concurrency: int = 8,
        default_confidence: float = 0.5,
    ) -> None:
        if not labels:
            raise TrainingError("A fine-tuned classifier needs its department names.")
        self._client = client
        self.model = model
        self._labels = tuple(labels)
        self.base_model = base_model
        self.job_id = job_id
        self.concurrency = concurrency
        self.default_confidence = default_confidence

    @property
    def model_id(self) -> str:
        """The remote model name (``ft:...``)."""
        return self.model

    @property
    def labels(self) -> tuple[str, ...]:
        """The departments it was trained on."""
        return self._labels

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, always inside the label set."""
        client = require_client(self._client)
        fallback = fallback_label(self.labels)

        def empty() -> Prediction:
            return Prediction(fallback, 0.0, ((fallback, 0.0),), model_id=self.model_id)

        async def one(text: str) -> Prediction:
            try:
                completion, latency = await complete(
                    client.sdk,
                    f"classifying with {self.model}",
                    model=self.model,
                    messages=finetune_messages(self.labels, text.strip()),
                    logprobs=True,
                    top_logprobs=TOP_LOGPROBS,
                    temperature=0,
                    max_completion_tokens=10,
                )
            except LLMError as exc:
                if isinstance(exc.__cause__, openai.NotFoundError):
                    raise LLMError(
                        f"The fine-tuned model {self.model} is not served (deleted, or its base "
                        "model was shut down: OpenAI stops fine-tunes of gpt-4o-mini and "
                        "gpt-4.1(-mini) on 2027-01-14); train a local or prompted model."
                    ) from exc
                raise
            return prediction_from(
                completion,
                self.labels,
                structured=False,
                model_id=self.model_id,
                latency_ms=latency,
                default_confidence=self.default_confidence,
            )

        return await predict_all(texts, one, concurrency=self.concurrency, empty=empty)

    def to_bytes(self) -> bytes:
        """A JSON artefact naming the remote model (the weights stay with the provider)."""
        doc: JsonObject = {
            "model": self.model,
            "base_model": self.base_model,
            "job_id": self.job_id,
            "labels": list(self.labels),
            "prompt_version": FINETUNE_PROMPT_VERSION,
        }
        payload = json.dumps(doc, sort_keys=True).encode("utf-8")
        return pack(KIND, doc, payload)


def fine_tuned_classifier(
    model: str,
    labels: Sequence[str],
    context: LearnerContext | None,
    *,
    base_model: str = "",
    job_id: str = "",
) -> FineTunedClassifier:
    """A classifier for an existing ``ft:...`` model (e.g. ``--model ft:...`` on the CLI)."""
    config = client_config(context)
    return FineTunedClassifier(
        context.openai if context is not None else None,
        model,
        labels,
        concurrency=config.concurrency,
        default_confidence=config.confidence_without_logprobs,
        base_model=base_model,
        job_id=job_id,
    )


def load(meta: JsonObject, payload: bytes, context: LearnerContext | None) -> FineTunedClassifier:
    """Rebuild a FineTunedClassifier from its artefact."""
    try:
        doc = json.loads(payload.decode("utf-8"))
        model, labels = str(doc["model"]), [str(x) for x in doc["labels"]]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise ModelFormatError("The fine-tuned model artefact is corrupt.") from None
    if doc.get("prompt_version") != FINETUNE_PROMPT_VERSION:
        raise ModelFormatError(
            f"This fine-tune was trained with prompt {doc.get('prompt_version')!r}, which this "
            "version no longer writes; fine-tune again."
        )
    return fine_tuned_classifier(
        model,
        labels,
        context,
        base_model=str(doc.get("base_model", "")),
        job_id=str(doc.get("job_id", "")),
    )


class FineTuneLearner(OpenAILearnerBase):
    """Fine-tunes an OpenAI model on the examples and returns it as a classifier.

    Implements ``classifier.protocols.RemoteTrainingLearner``: ``start`` creates the job (its id
    can be stored before anything else happens), ``follow`` waits for it (again after a
    restart), ``cancel`` stops it; ``train`` does start and follow in one go. Starting is
    idempotent on the provider's side (the request hash is the job's metadata), so even a crash
    between creating the job and storing its id never makes a second job. How the job runs:
    ``context.finetune`` (``FineTuneOptions``).
    """

    name = KIND
    description = (
        "OpenAI fine-tuning job (needs OPENAI_API_KEY and an organisation or provider that "
        "still offers fine-tuning)."
    )

    def _tuner(self) -> FineTuner:
        options = self.context.finetune
        return FineTuner(
            require_client(self.context.openai),
            base_model=options.base_model,
            poll_interval=options.poll_interval,
        )

    async def start(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int,
        progress: ProgressCallback = no_progress,
    ) -> str:
        """Validate and upload the training file and create (or find) the job; its id."""
        training = build_training_file(examples, labels)
        for warning in training.warnings:
            progress(ProgressEvent("validate", warning))
        return await self._tuner().start(
            training, suffix=self.context.finetune.suffix, seed=seed, progress=progress
        )

    async def follow(
        self, job_id: str, labels: Sequence[str], *, progress: ProgressCallback = no_progress
    ) -> FineTunedClassifier:
        """Wait for ``job_id``, reporting its status; the fine-tuned classifier."""
        result = await self._tuner().follow(
            job_id, progress=progress, max_wait=self.context.finetune.max_wait
        )
        return fine_tuned_classifier(
            result.fine_tuned_model,
            labels,
            self.context,
            base_model=result.base_model,
            job_id=result.job_id,
        )

    async def cancel(self, job_id: str) -> None:
        """Cancel the remote job (an ended job is left as it is)."""
        await self._tuner().cancel(job_id)

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> FineTunedClassifier:
        """Validate, upload, start the job, follow it to the end; the ``ft:`` classifier."""
        job_id = await self.start(examples, labels, seed=seed, progress=progress)
        return await self.follow(job_id, labels, progress=progress)
