"""Building the LLM side's configuration and client from the settings.

``classifier.llm`` never imports ``admin``; this is the one place that turns ``Settings`` into
an ``OpenAIConfig`` and the process's ``OpenAIClient``.
"""

from __future__ import annotations

from admin.settings import Settings
from classifier.llm.client import DEFAULT_PRICES, OpenAIClient, OpenAIConfig, Price


def openai_config(settings: Settings) -> OpenAIConfig:
    """The OpenAI configuration in ``settings`` (the key stays out of reprs)."""
    prices = dict(DEFAULT_PRICES)
    prices.update({model: Price(*pair) for model, pair in settings.openai_prices.items()})
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIConfig(
        api_key=key or None,
        base_url=settings.openai_base_url or None,
        model=settings.openai_model,
        finetune_base_model=settings.openai_finetune_base_model,
        timeout_seconds=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
        concurrency=settings.openai_concurrency,
        few_shot=settings.openai_few_shot,
        confidence_without_logprobs=settings.openai_confidence_without_logprobs,
        prices=prices,
    )


def openai_client(settings: Settings) -> OpenAIClient | None:
    """The process's client, or None when no key is configured (local learners still work).

    The caller owns it and closes it (``await client.aclose()``) when the process ends.
    """
    config = openai_config(settings)
    return OpenAIClient(config) if config.api_key else None
