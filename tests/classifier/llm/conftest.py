"""Fixtures for the LLM side: the fake OpenAI API on loopback and a strict client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from classifier.llm.client import OpenAIClient, OpenAIConfig
from tests.fakes.openai_api import API_KEY, FakeOpenAI


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A running fake OpenAI API (fresh state per test)."""
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


def make_config(fake: FakeOpenAI, **overrides: object) -> OpenAIConfig:
    """A config pointing at ``fake`` with short timeouts, so a fault can never hang a test."""
    values: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": fake.base_url,
        "model": "gpt-4o-mini",
        "timeout_seconds": 5.0,
        "max_retries": 2,
    }
    values.update(overrides)
    return OpenAIConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def llm_client(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIClient]:
    """The project's client against the fake, with the SDK's strict response validation on."""
    client = OpenAIClient(make_config(fake_openai), strict_response_validation=True)
    yield client
    await client.aclose()
