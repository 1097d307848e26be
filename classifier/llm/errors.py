"""Errors of the LLM side, all under ``classifier.errors.LLMError``.

LLMError                        (classifier.errors) the endpoint failed, refused or answered
│                               something unusable; the message says what to do
├── LLMNotConfiguredError       no API key (or no client) for a command that needs one
├── FineTuneUnavailableError    the provider refuses to create fine-tuning jobs (organisation
│                               not eligible, self-serve fine-tuning ended, base model retired)
├── FineTuneJobError            the job ended ``failed`` or ``cancelled``; carries ``job_id``
└── FineTuneInterruptedError    we stopped following a job that goes on remotely; resume it
                                with its ``job_id`` (nothing is lost, nothing is duplicated)
"""

from __future__ import annotations

from classifier.errors import LLMError

#: What to use instead when fine-tuning is refused; appended to every refusal message.
FINE_TUNE_ALTERNATIVES = (
    "use the local learner (--learner auto), the prompted learner (--learner openai, no "
    "training job), or another OpenAI-compatible provider that supports fine-tuning "
    "(set OPENAI_BASE_URL)"
)


class LLMNotConfiguredError(LLMError):
    """No API key or client is configured for something that calls the LLM endpoint."""


class FineTuneUnavailableError(LLMError):
    """The provider will not create fine-tuning jobs for this organisation or model."""


class FineTuneJobError(LLMError):
    """A fine-tuning job ended without a model (failed or cancelled)."""

    def __init__(self, message: str, *, job_id: str, status: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class FineTuneInterruptedError(LLMError):
    """Following a job stopped (timeout or endpoint trouble); the job itself goes on."""

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id
