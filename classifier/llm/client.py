"""The one OpenAI client per process, its configuration, and SDK-error translation.

``OpenAIConfig`` is a plain dataclass so this package never imports ``admin``: the admin side
builds it from its settings (``admin.llm.openai_config``). ``OpenAIClient`` owns one
``AsyncOpenAI`` built from it; everything external (``base_url``, ``http_client``, retries,
timeouts) comes in through the constructor, so tests point it at the fake on loopback.

Retries: the SDK retries connection errors, 408/409/429 and 5xx (honouring ``Retry-After``) up
to ``max_retries`` times. Calls that create something remotely (file upload, job creation) use
``OpenAIClient.no_retry`` and are made idempotent by the caller before being retried.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import httpx2
import openai

from classifier.errors import LLMError
from classifier.llm.errors import LLMNotConfiguredError

if TYPE_CHECKING:
    from classifier.learners import LearnerContext

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input_per_million: float
    output_per_million: float


#: Published list prices (USD per 1M tokens) at the time of writing; override with
#: ``TRIAGE_OPENAI_PRICES``. Keys are model ids or prefixes; ``ft:<base>`` is a fine-tune.
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "ft:gpt-4o-mini": Price(0.30, 1.20),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "ft:gpt-4.1-mini": Price(0.80, 3.20),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "ft:gpt-4.1-nano": Price(0.20, 0.80),
    "gpt-4.1": Price(2.00, 8.00),
    "ft:gpt-4.1": Price(3.00, 12.00),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "ft:gpt-3.5-turbo": Price(3.00, 6.00),
}


@dataclass(frozen=True)
class OpenAIConfig:
    """How to reach an OpenAI-compatible endpoint and which models to use there.

    ``confidence_without_logprobs`` is reported when the endpoint returns no logprobs (some
    OpenAI-compatible servers do not); it sits at the bot's default routing threshold so such
    answers are routed but flagged as uncertain in reports.
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    finetune_base_model: str = "gpt-4o-mini-2024-07-18"
    timeout_seconds: float = 30.0
    max_retries: int = 3
    concurrency: int = 8
    few_shot: int = 0
    confidence_without_logprobs: float = 0.5
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))


class OpenAIClient:
    """Holds the process's ``AsyncOpenAI`` client; close it when the process ends.

    ``http_client`` and ``strict_response_validation`` exist for tests and unusual networks
    (proxies, custom TLS); production code passes only the config.
    """

    def __init__(
        self,
        config: OpenAIConfig,
        *,
        http_client: httpx2.AsyncClient | None = None,
        strict_response_validation: bool = False,
    ) -> None:
        if not config.api_key:
            raise LLMNotConfiguredError(
                "No OpenAI API key is configured; set OPENAI_API_KEY (any non-empty value for "
                "keyless OpenAI-compatible servers) or use a local learner."
            )
        self.config = config
        self._http_client = http_client
        self._strict = strict_response_validation
        self._sdk: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _build(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self.config.api_key,
            # Passed explicitly so the SDK never falls back to reading the environment itself.
            base_url=self.config.base_url or OPENAI_BASE_URL,
            timeout=httpx2.Timeout(
                self.config.timeout_seconds, connect=min(10.0, self.config.timeout_seconds)
            ),
            max_retries=self.config.max_retries,
            http_client=self._http_client,
            _strict_response_validation=self._strict,
        )

    @property
    def sdk(self) -> openai.AsyncOpenAI:
        """The ``AsyncOpenAI`` client for the running event loop.

        One per process in the bot (one loop). A command line that runs several
        ``asyncio.run`` calls gets a fresh one per loop, because pooled connections belong to
        the loop that opened them.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._sdk is None or (loop is not None and loop is not self._loop):
            self._sdk = self._build()
            self._loop = loop
        return self._sdk

    @property
    def no_retry(self) -> openai.AsyncOpenAI:
        """The same client without SDK retries, for calls that create something remotely."""
        return self.sdk.with_options(max_retries=0)

    async def aclose(self) -> None:
        """Close the underlying HTTP connections."""
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def require_client(client: OpenAIClient | None) -> OpenAIClient:
    """``client``, or a clear error when none is configured."""
    if client is not None:
        return client
    raise LLMNotConfiguredError(
        "This model calls an OpenAI-compatible endpoint but no API key is configured; set "
        "OPENAI_API_KEY (and OPENAI_BASE_URL for another provider) or use a local model."
    )


class OpenAILearnerBase:
    """What the LLM learners share: built with a LearnerContext, available when it has a client."""

    def __init__(self, context: LearnerContext) -> None:
        self.context = context

    def available(self) -> bool:
        """Whether an OpenAI client is configured (the SDK itself is a core dependency)."""
        return self.context.openai is not None


def client_config(context: LearnerContext | None) -> OpenAIConfig:
    """The configuration of the context's client (the defaults when there is none)."""
    if context is None or context.openai is None:
        return OpenAIConfig()
    return context.openai.config


_SECRET = re.compile(r"(sk-|key-|Bearer\s+)[A-Za-z0-9_\-*.]{4,}")


def redact(text: str, limit: int = 300) -> str:
    """A provider message safe to show and log: no key fragments, bounded length."""
    cleaned = _SECRET.sub(lambda m: f"{m.group(1)}***", " ".join(text.split()))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def provider_message(exc: openai.APIError) -> str:
    """The provider's own error message (redacted), or ''."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return redact(body["message"])
    return ""


def is_transient(exc: BaseException) -> bool:
    """Connection trouble, timeouts, 408/409/429 and 5xx: worth another try later."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def translate_error(exc: openai.OpenAIError, doing: str) -> LLMError:
    """One sentence saying what happened while ``doing`` and what to do; details go to the log."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    log.warning(
        "OpenAI call failed while %s: %s status=%s code=%s message=%s",
        doing,
        type(exc).__name__,
        status,
        code,
        provider_message(exc) if isinstance(exc, openai.APIError) else "",
    )
    message: str
    if isinstance(exc, openai.APITimeoutError):
        message = (
            f"The LLM endpoint did not answer in time while {doing}; try again later or raise "
            "TRIAGE_OPENAI_TIMEOUT_SECONDS."
        )
    elif isinstance(exc, openai.APIConnectionError):
        message = (
            f"The LLM endpoint could not be reached while {doing}; check OPENAI_BASE_URL and "
            "the network."
        )
    elif isinstance(exc, openai.AuthenticationError):
        # OpenAI's 401 message quotes part of the key, so it is never shown.
        message = f"The LLM endpoint rejected the API key while {doing}; check OPENAI_API_KEY."
    elif isinstance(exc, openai.RateLimitError):
        if code == "insufficient_quota":
            message = (
                f"The OpenAI account has run out of quota while {doing}; check its billing "
                "settings or use a local learner."
            )
        else:
            message = (
                f"The LLM endpoint kept rate-limiting requests while {doing}; wait a minute and "
                "try again, or lower TRIAGE_OPENAI_CONCURRENCY."
            )
    elif isinstance(exc, openai.PermissionDeniedError):
        message = (
            f"The LLM endpoint refused access while {doing} ({provider_message(exc)}); check "
            "the key's project and permissions."
        )
    elif isinstance(exc, openai.NotFoundError):
        message = (
            f"The LLM endpoint does not know what was asked for while {doing} "
            f"({provider_message(exc)}); check the model name or job id."
        )
    elif isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        message = (
            f"The LLM endpoint failed with HTTP {exc.status_code} while {doing}, even after "
            "retries; try again later."
        )
    elif isinstance(exc, openai.APIStatusError):
        message = (
            f"The LLM endpoint rejected the request while {doing} "
            f"(HTTP {exc.status_code}: {provider_message(exc)})."
        )
    elif isinstance(exc, openai.APIResponseValidationError):
        message = (
            f"The LLM endpoint answered in a format that is not OpenAI's API while {doing}; "
            "check that OPENAI_BASE_URL points at an OpenAI-compatible server."
        )
    else:
        message = f"The LLM call failed while {doing}; see the log for details."
    return LLMError(message)
