"""Fine-tuning against the fake OpenAI API: file, job state machine, resume, faults, model."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from classifier.artifacts import load_model
from classifier.errors import LLMError, TrainingError
from classifier.examples import Example, Source, write_examples
from classifier.learners import FineTuneOptions, LearnerContext, get_learner
from classifier.llm.client import OpenAIClient
from classifier.llm.errors import (
    FineTuneInterruptedError,
    FineTuneJobError,
    FineTuneUnavailableError,
)
from classifier.llm.finetune import (
    REQUEST_KEY,
    FineTunedClassifier,
    FineTuner,
    FineTuneResult,
    build_training_file,
    fine_tuned_classifier,
)
from classifier.llm.prompted import PromptedClassifier
from classifier.llm.prompts import finetune_system_prompt
from classifier.protocols import ProgressEvent, RemoteTrainingLearner
from classifier.taxonomy import Taxonomy
from tests.classifier.llm.conftest import make_config
from tests.fakes.openai_api import TOPICS, FakeOpenAI, chat_jsonl_problems

LABELS = ("Technical", "Billing", "Account", "Product", "Other")


def seed_examples(per_label: int = 3) -> list[Example]:
    """Examples from the fake's topic phrases (distinct texts, every department)."""
    return [
        Example(f"Hello, {TOPICS[label][i]}.", label, Source.GENERATED)
        for label in LABELS
        for i in range(per_label)
    ]


async def no_sleep(_seconds: float) -> None:
    """Polling without waiting: the fake advances one state per poll."""


def tuner(client: OpenAIClient, **kw: object) -> FineTuner:
    kw.setdefault("settle_seconds", 0.1)
    return FineTuner(client, poll_interval=0, sleep=no_sleep, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ the training file


def test_training_file_is_valid_chat_jsonl_identical_to_the_dataset_writer(
    tmp_path: Path,
) -> None:
    examples = seed_examples()
    training = build_training_file(examples, LABELS)
    assert chat_jsonl_problems(training.data) == []
    written = tmp_path / "train.jsonl"
    write_examples(written, examples, chat_system_prompt=finetune_system_prompt(LABELS))
    assert training.data == written.read_bytes()
    first = json.loads(training.data.splitlines()[0])
    assert first["messages"][0] == {
        "role": "system",
        "content": "Classify the support ticket into one department: "
        "Technical, Billing, Account, Product, Other.",
    }
    assert training.counts == dict.fromkeys(LABELS, 3)
    assert training.warnings == ()


def test_training_file_validation_errors_name_the_problem() -> None:
    with pytest.raises(TrainingError, match="at least 10"):
        build_training_file(seed_examples(1), LABELS)
    without_other = [e for e in seed_examples() if e.label != "Other"]
    with pytest.raises(TrainingError, match="none for: Other"):
        build_training_file(without_other, LABELS)
    with pytest.raises(TrainingError, match="not departments: Sales"):
        build_training_file([*seed_examples(), Example("x", "Sales")], LABELS)
    long = [*seed_examples(), Example("word " * 5000, "Other")]
    with pytest.raises(TrainingError, match="over the 2000-token limit"):
        build_training_file(long, LABELS, max_example_tokens=2000)


def test_training_file_warns_about_duplicates_and_imbalance() -> None:
    examples = seed_examples(2) + [
        Example(f"Hello, the api returns error {i}.", "Technical") for i in range(10)
    ]
    examples.append(examples[0])
    training = build_training_file(examples, LABELS)
    assert any("1 duplicate" in w for w in training.warnings)
    assert any("unbalanced" in w for w in training.warnings)
    assert len(training.examples) == len(examples) - 1


# ------------------------------------------------------------------------ the job


async def test_start_and_follow_a_job_to_a_usable_model(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    training = build_training_file(seed_examples(), LABELS)
    events: list[ProgressEvent] = []
    ft = tuner(llm_client)
    job_id = await ft.start(training, suffix="triage", seed=7, progress=events.append)

    [upload] = fake_openai.requests_to("POST", "/v1/files")
    assert b'name="purpose"\r\n\r\nfine-tune' in upload.body
    [file_id] = fake_openai.file_bytes
    assert fake_openai.file_bytes[file_id] == training.data
    [create] = fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")
    assert create.json["training_file"] == file_id
    assert create.json["suffix"] == "triage"
    assert create.json["seed"] == 7
    assert create.json["metadata"]["triage_dataset_sha256"] == training.sha256
    assert create.json["model"] == "gpt-4o-mini-2024-07-18"

    result = await ft.follow(job_id, progress=events.append)
    assert result.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:fake-org:triage:")
    assert result.trained_tokens
    messages = [e.message for e in events]
    states = ["validating_files", "queued", "running", "succeeded"]
    reported = [m.split(",")[0] for m in messages if m.split(",")[0] in states]
    assert list(dict.fromkeys(reported)) == states  # every state, in order
    assert "Files validated, moving job to queued state" in messages
    assert any(m.startswith("Step ") for m in messages)
    assert any("trained tokens" in m for m in messages)
    fractions = [e.fraction for e in events if e.stage == "fine-tune" and e.fraction is not None]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0

    served = [m.id async for m in await llm_client.sdk.models.list()]
    assert result.fine_tuned_model in served


async def test_restart_mid_job_resumes_it_without_a_second_job(
    fake_openai: FakeOpenAI, llm_client: OpenAIClient
) -> None:
    fake_openai.polls_per_state = 3
    training = build_training_file(seed_examples(), LABELS)
    first = tuner(llm_client)
    job_id = await first.start(training)
    with pytest.raises(FineTuneInterruptedError) as info:
        await first.follow(job_id, max_wait=0)  # the process "dies" while the job runs
    assert info.value.job_id == job_id
    assert "triage finetune resume" in str(info.value)

    # A new process with a new client: starting the same request finds the running job.
    async with OpenAIClient(make_config(fake_openai), strict_response_validation=True) as again:
        second = tuner(again)
        assert await second.start(training) == job_id
        result = await second.follow(job_id)
    assert result.job_id == job_id
    assert len(fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")) == 1
    assert len(fake_openai.requests_to("POST", "/v1/files")) == 1
    assert len(fake_openai.jobs) == 1


async def test_a_lost_create_response_is_recovered_without_a_duplicate_job(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    # The job is created, but the client sees a 500: it must find the job, not create another.
    fake_openai.inject("POST", "/v1/fine_tuning/jobs", status=500, after=True)
    training = build_training_file(seed_examples(), LABELS)
    job_id = await tuner(llm_client).start(training)
    assert list(fake_openai.jobs) == [job_id]
    assert len(fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")) == 1
    metadata = fake_openai.jobs[job_id]["metadata"]
    assert REQUEST_KEY in metadata


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_create_failures_are_retried_once_checked(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI, status: int
) -> None:
    fake_openai.inject("POST", "/v1/fine_tuning/jobs", status=status, retry_after=0.01)
    fake_openai.inject("POST", "/v1/files", status=status, retry_after=0.01)
    training = build_training_file(seed_examples(), LABELS)
    job_id = await tuner(llm_client).start(training)
    assert list(fake_openai.jobs) == [job_id]
    assert len(fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")) == 2
    assert len(fake_openai.file_bytes) == 1


async def test_create_that_keeps_failing_ends_in_a_clear_error_and_one_upload(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.inject("POST", "/v1/fine_tuning/jobs", status=500, times=99)
    training = build_training_file(seed_examples(), LABELS)
    with pytest.raises(LLMError, match="creating the fine-tuning job"):
        await tuner(llm_client).start(training)
    assert len(fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")) == 3
    assert fake_openai.jobs == {}
    # The dataset is not lost: it is uploaded once and reused by the next attempt.
    assert list(fake_openai.file_bytes.values()) == [training.data]
    fake_openai.faults.clear()
    await tuner(llm_client).start(training)
    assert len(fake_openai.requests_to("POST", "/v1/files")) == 1


@pytest.mark.parametrize(
    ("reason", "today", "expected"),
    [
        ("not_eligible", dt.date(2026, 11, 27), "since 2026-05-07"),
        ("ended", dt.date(2027, 2, 1), "ended self-serve fine-tuning on 2027-01-06"),
        ("model_retired", dt.date(2026, 11, 27), "will not fine-tune gpt-4o-mini-2024-07-18"),
    ],
)
async def test_refusals_say_why_and_name_the_alternatives(
    llm_client: OpenAIClient,
    fake_openai: FakeOpenAI,
    reason: str,
    today: dt.date,
    expected: str,
) -> None:
    fake_openai.refuse_fine_tuning(reason)
    training = build_training_file(seed_examples(), LABELS)
    with pytest.raises(FineTuneUnavailableError) as info:
        await tuner(llm_client, today=lambda: today).start(training)
    message = str(info.value)
    assert expected in message
    for alternative in ("local learner", "prompted learner", "OPENAI_BASE_URL"):
        assert alternative in message
    assert len(fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")) == 1  # no blind retry
    assert fake_openai.jobs == {}


async def test_a_failed_job_raises_with_the_providers_reason(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_jobs = True
    ft = tuner(llm_client)
    job_id = await ft.start(build_training_file(seed_examples(), LABELS))
    with pytest.raises(FineTuneJobError, match="invalid training file") as info:
        await ft.follow(job_id)
    assert (info.value.job_id, info.value.status) == (job_id, "failed")


async def test_cancel_stops_the_job_and_following_reports_it(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    ft = tuner(llm_client)
    job_id = await ft.start(build_training_file(seed_examples(), LABELS))
    status = await ft.cancel(job_id)
    assert status.status == "cancelled"
    assert (await ft.cancel(job_id)).status == "cancelled"  # cancelling twice is harmless
    with pytest.raises(FineTuneJobError, match="cancelled"):
        await ft.follow(job_id)


# ------------------------------------------------------------------------ the uploaded files


def _training_files(fake: FakeOpenAI) -> list[str]:
    return [f for f, meta in fake.files.items() if meta["purpose"] == "fine-tune"]


async def test_the_training_file_is_deleted_once_the_job_succeeds(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    ft = tuner(llm_client)
    job_id = await ft.start(build_training_file(seed_examples(), LABELS))
    [file_id] = _training_files(fake_openai)
    result = await ft.follow(job_id)
    assert _training_files(fake_openai) == []
    assert fake_openai.requests_to("DELETE", f"/v1/files/{file_id}")
    # The model was trained on a copy: it still answers.
    context = LearnerContext(openai=llm_client)
    model = fine_tuned_classifier(result.fine_tuned_model, LABELS, context)
    [prediction] = await model.predict(["I was charged twice for my invoice"])
    assert prediction.label in LABELS


async def test_the_training_file_is_deleted_when_the_job_fails_or_is_cancelled(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_jobs = True
    ft = tuner(llm_client)
    failed = await ft.start(build_training_file(seed_examples(), LABELS))
    with pytest.raises(FineTuneJobError):
        await ft.follow(failed)
    assert _training_files(fake_openai) == []
    fake_openai.fail_jobs = False
    cancelled = await ft.start(build_training_file(seed_examples(2), LABELS))
    assert len(_training_files(fake_openai)) == 1
    await ft.cancel(cancelled)
    assert _training_files(fake_openai) == []


async def test_a_file_a_running_job_still_uses_is_kept(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.polls_per_state = 50  # the second job keeps running
    ft = tuner(llm_client)
    training = build_training_file(seed_examples(), LABELS)
    first = await ft.start(training, seed=1)
    await ft.start(training, seed=2)  # the same file, uploaded once, used by two jobs
    [file_id] = _training_files(fake_openai)
    await ft.cancel(first)
    assert _training_files(fake_openai) == [file_id]


async def test_an_unreachable_endpoint_while_following_leaves_a_resumable_job(
    fake_openai: FakeOpenAI,
) -> None:
    config = make_config(fake_openai, max_retries=1)
    async with OpenAIClient(config, strict_response_validation=True) as client:
        ft = tuner(client)
        job_id = await ft.start(build_training_file(seed_examples(), LABELS))
        fake_openai.inject("GET", "/v1/fine_tuning/jobs/", status=502, retry_after=0.01, times=2)
        with pytest.raises(FineTuneInterruptedError) as info:
            await ft.follow(job_id)
        assert info.value.job_id == job_id
        result = await ft.follow(job_id)
    assert result.job_id == job_id
    assert len(fake_openai.jobs) == 1


# ------------------------------------------------------------------------ the fine-tuned model


async def test_fine_tuned_model_classifies_with_a_short_prompt(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI, taxonomy: Taxonomy
) -> None:
    context = LearnerContext(
        taxonomy=taxonomy, openai=llm_client, finetune=FineTuneOptions(poll_interval=0)
    )
    learner = get_learner("openai-finetune", context)
    assert isinstance(learner, RemoteTrainingLearner)  # start, follow and cancel by job id
    job_id = await learner.start(seed_examples(), LABELS, seed=0)
    model = await learner.follow(job_id, LABELS, progress=lambda _event: None)
    assert isinstance(model, FineTunedClassifier)
    assert model.job_id == job_id
    assert model.model_id.startswith("ft:")

    tickets = ["Hi, the dashboard stays blank after the latest update", "my money was taken twice"]
    tuned = await model.predict(tickets)
    assert [p.label for p in tuned] == ["Technical", "Billing"]
    assert all(0 < p.confidence <= 1 for p in tuned)
    prompted = await PromptedClassifier(llm_client, taxonomy, model="gpt-4o-mini").predict(tickets)
    # The seed's point: the fine-tune needs a far shorter prompt than the prompted model.
    assert 3 * tuned[0].usage["prompt_tokens"] < prompted[0].usage["prompt_tokens"]

    sent = fake_openai.requests_to("POST", "/v1/chat/completions")[0].json
    assert sent["messages"][0]["content"] == finetune_system_prompt(LABELS)
    assert sent["messages"][1]["content"] == tickets[0]

    loaded = load_model(model.to_bytes(), context)
    assert isinstance(loaded, FineTunedClassifier)
    assert (loaded.model_id, loaded.labels, loaded.job_id) == (
        model.model_id,
        model.labels,
        model.job_id,
    )


async def test_a_retired_fine_tune_says_it_is_no_longer_served(llm_client: OpenAIClient) -> None:
    context = LearnerContext(openai=llm_client)
    model = fine_tuned_classifier("ft:gpt-4o-mini-2024-07-18:org:x:gone", LABELS, context)
    with pytest.raises(LLMError, match="2027-01-14"):
        await model.predict(["hello"])


# ------------------------------------------------------------------------ every fault, one outcome


@pytest.mark.parametrize(
    ("method", "path", "fault", "expected"),
    [
        ("POST", "/v1/files", {"status": 500, "times": 99}, "error"),
        ("POST", "/v1/files", {"status": 429, "retry_after": 0.01}, "model"),
        ("GET", "/v1/files", {"status": 503, "times": 99}, "error"),
        (
            "POST",
            "/v1/fine_tuning/jobs",
            {"status": 429, "retry_after": 0.01, "times": 99},
            "error",
        ),
        ("POST", "/v1/fine_tuning/jobs", {"status": 500, "after": True, "times": 2}, "model"),
        # The create times out on the client, and the server makes the job a moment later.
        ("POST", "/v1/fine_tuning/jobs", {"status": None, "delay": 0.8}, "model"),
        ("GET", "/v1/fine_tuning/jobs", {"status": 500, "times": 99}, "error"),
        ("GET", "/v1/fine_tuning/jobs/", {"status": 502, "times": 3}, "resumable"),
        ("GET", "/v1/fine_tuning/jobs/", {"status": None, "delay": 0.8, "times": 2}, "resumable"),
        ("GET", "/v1/fine_tuning/jobs/", {"status": 500, "times": 1}, "model"),
    ],
)
async def test_every_fault_ends_in_a_model_a_clear_error_or_a_resumable_job(
    fake_openai: FakeOpenAI, method: str, path: str, fault: dict[str, object], expected: str
) -> None:
    config = make_config(fake_openai, max_retries=1, timeout_seconds=0.5)
    training = build_training_file(seed_examples(), LABELS)
    fake_openai.inject(method, path, **fault)  # type: ignore[arg-type]
    outcome: object = None
    async with OpenAIClient(config, strict_response_validation=True) as client:
        ft = FineTuner(client, poll_interval=0, sleep=no_sleep)  # default settle window
        try:
            # Never a hang: the whole flow is bounded.
            job_id = await asyncio.wait_for(ft.start(training), 20)
            outcome = await asyncio.wait_for(ft.follow(job_id), 20)
        except LLMError as exc:
            outcome = exc
        if isinstance(outcome, FineTuneInterruptedError):
            fake_openai.faults.clear()
            resumed = await ft.follow(outcome.job_id)  # the job went on remotely
            assert resumed.job_id == outcome.job_id
        await fake_openai.settled()  # a request the client gave up on may still create a job
    kind = {FineTuneResult: "model", FineTuneInterruptedError: "resumable"}.get(
        type(outcome), "error"
    )
    assert kind == expected, outcome
    if kind == "error":
        assert str(outcome).endswith(".")
    live = [j for j in fake_openai.jobs.values() if j["status"] != "cancelled"]
    assert len(live) <= 1  # never a duplicate job
    for job in fake_openai.jobs.values():
        assert fake_openai.trained_on[job["id"]] == training.data  # the dataset each job used
    assert len(fake_openai.file_bytes) <= 1


@pytest.mark.parametrize("answer", ["Sales", "I think Billing", "", "billing."])
async def test_fine_tuned_answers_never_leave_the_label_set(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI, answer: str
) -> None:
    fake_openai.models["ft:x"] = {"id": "ft:x", "object": "model", "created": 0, "owned_by": "o"}
    fake_openai.chat_override = lambda _body: answer
    model = fine_tuned_classifier("ft:x", LABELS, LearnerContext(openai=llm_client))
    [pred] = await model.predict(["anything"])
    assert pred.label in LABELS
    assert pred.label == ("Billing" if answer == "billing." else "Other")
