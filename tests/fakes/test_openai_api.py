"""The fake OpenAI API itself: envelopes, pagination, metadata filter, time-driven jobs.

Everything is read through the real SDK with strict response validation, so a shape that
drifts from OpenAI's published types fails here first.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest

from tests.fakes.openai_api import API_KEY, FakeOpenAI

TRAINING = b"".join(
    json.dumps(
        {
            "messages": [
                {"role": "system", "content": "Classify."},
                {"role": "user", "content": f"ticket {i}"},
                {"role": "assistant", "content": "Other"},
            ]
        }
    ).encode()
    + b"\n"
    for i in range(10)
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sdk(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key=API_KEY, base_url=fake.base_url, max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


async def _job(sdk: openai.AsyncOpenAI, tag: str) -> str:
    file = await sdk.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    job = await sdk.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=file.id, metadata={"tag": tag}
    )
    return job.id


async def test_job_list_paginates_and_filters_by_metadata(sdk: openai.AsyncOpenAI) -> None:
    ids = [await _job(sdk, tag) for tag in ("a", "b", "a")]
    page = await sdk.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == [ids[2], ids[1]]
    assert page.has_more is True
    assert [j.id async for j in await sdk.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    tagged = [j.id async for j in await sdk.fine_tuning.jobs.list(metadata={"tag": "a"})]
    assert tagged == [ids[2], ids[0]]


async def test_files_are_kept_and_retrievable(sdk: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    file = await sdk.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    assert (file.object, file.purpose, file.bytes) == ("file", "fine-tune", len(TRAINING))
    assert (await sdk.files.retrieve(file.id)).filename == "t.jsonl"
    assert fake.file_bytes[file.id] == TRAINING
    with pytest.raises(openai.BadRequestError, match="Invalid file format"):
        await sdk.files.create(file=("bad.jsonl", b"not json\n"), purpose="fine-tune")


async def test_jobs_can_advance_by_time(sdk: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    now = [0.0]
    fake.clock = lambda: now[0]
    fake.seconds_per_state = 60.0
    job_id = await _job(sdk, "t")
    assert (await sdk.fine_tuning.jobs.retrieve(job_id)).status == "validating_files"
    now[0] += 60.0
    assert (await sdk.fine_tuning.jobs.retrieve(job_id)).status != "validating_files"
    now[0] += 600.0
    job = await sdk.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded"
    assert job.fine_tuned_model is not None
    assert (await sdk.models.retrieve(job.fine_tuned_model)).owned_by == "org-fake"
    events = [e async for e in await sdk.fine_tuning.jobs.list_events(job_id, limit=3)]
    assert events[0].message == "The job has successfully completed"
    assert any(e.type == "metrics" and isinstance(e.data, dict) for e in events)


async def test_errors_use_openais_error_body(sdk: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="nope", messages=[])
    assert missing.value.code == "model_not_found"
    fake.refuse_fine_tuning()
    file = await sdk.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await sdk.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file.id)
    assert refused.value.type == "invalid_request_error"
    bad = openai.AsyncOpenAI(api_key="sk-bad", base_url=fake.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        await bad.models.list()
    assert auth.value.code == "invalid_api_key"
    await bad.close()


async def test_429_carries_retry_after(fake: FakeOpenAI, sdk: openai.AsyncOpenAI) -> None:
    fake.inject("GET", "/v1/models", status=429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.models.list()
    assert limited.value.response.headers["retry-after"] == "7"
    assert [r.path for r in fake.requests] == ["/v1/models"]
