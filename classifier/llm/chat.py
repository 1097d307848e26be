"""Turning one chat completion into a Prediction that is always inside the label set.

Shared by the prompted classifier (structured JSON answers) and fine-tuned models (bare label
answers). Confidence comes from the answer's token logprobs:

* confidence = exp(sum of the logprobs of the tokens that spell the label), i.e. the model's
  probability of having written that whole label;
* runner-ups come from ``top_logprobs`` at the label's first token: an alternative token that
  starts exactly one department's name scores that department with its probability;
* without logprobs (some OpenAI-compatible servers), confidence is the configured default.

An answer that names no department (malformed JSON, an invented label, a refusal) becomes the
fallback label with confidence 0 and a warning in the log; it never leaves the label set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import openai
from openai.types.chat import ChatCompletion

from classifier.errors import LLMError
from classifier.llm.client import translate_error
from classifier.llm.prompts import ANSWER_KEY
from classifier.protocols import Prediction

log = logging.getLogger(__name__)

#: How many alternatives to ask for at each answer token (OpenAI allows up to 20).
TOP_LOGPROBS = 5


def fallback_label(labels: Sequence[str]) -> str:
    """Where an unusable answer goes: the department called "Other" if any, else the last."""
    for label in labels:
        if label.casefold() == "other":
            return label
    return labels[-1]


def match_label(answer: str, labels: Sequence[str]) -> str | None:
    """The configured spelling of ``answer`` if it names a department (case, quotes, dots
    and surrounding space ignored), else None."""
    cleaned = answer.strip().strip("\"'`.").strip()
    for label in labels:
        if label.casefold() == cleaned.casefold():
            return label
    return None


@dataclass(frozen=True)
class Answer:
    """The label an answer names and where it sits in the content, or no label."""

    label: str | None
    span: tuple[int, int] | None = None


def read_json_answer(content: str, labels: Sequence[str]) -> Answer:
    """Read ``{"department": NAME}``; locate NAME in the content for the logprobs."""
    try:
        obj = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return Answer(None)
    raw = obj.get(ANSWER_KEY) if isinstance(obj, dict) else None
    if not isinstance(raw, str):
        return Answer(None)
    label = match_label(raw, labels)
    if label is None:
        return Answer(None)
    key = content.find(f'"{ANSWER_KEY}"')
    start = content.find(raw, key + len(ANSWER_KEY) + 2 if key >= 0 else 0)
    return Answer(label, (start, start + len(raw)) if start >= 0 else None)


def read_bare_answer(content: str, labels: Sequence[str]) -> Answer:
    """Read a bare department name (what a fine-tuned model answers)."""
    label = match_label(content, labels)
    if label is None:
        return Answer(None)
    stripped = content.strip().strip("\"'`.").strip()
    start = content.find(stripped)
    return Answer(label, (start, start + len(stripped)))


def _scores_from_logprobs(
    completion: ChatCompletion, answer: Answer, labels: Sequence[str]
) -> tuple[float, dict[str, float]] | None:
    """(confidence of the answer, first-token probability of other labels), or None."""
    choice = completion.choices[0]
    tokens = choice.logprobs.content if choice.logprobs is not None else None
    if not tokens or answer.span is None or answer.label is None:
        return None
    start, end = answer.span
    offsets = []
    position = 0
    for token in tokens:
        offsets.append(position)
        position += len(token.token)
    covering = [
        i
        for i, token in enumerate(tokens)
        if offsets[i] < end and offsets[i] + len(token.token) > start
    ]
    if not covering:
        return None
    confidence = math.exp(sum(tokens[i].logprob for i in covering))
    first = tokens[covering[0]]
    lead = start - offsets[covering[0]]
    others: dict[str, float] = {}
    for alt in first.top_logprobs:
        if lead > 0 and alt.token[:lead] != first.token[:lead]:
            continue
        piece = alt.token[max(lead, 0) :].casefold()
        if not piece.strip():
            continue
        named = [lab for lab in labels if lab.casefold().startswith(piece)]
        if len(named) == 1 and named[0] != answer.label:
            others[named[0]] = max(others.get(named[0], 0.0), math.exp(alt.logprob))
    return min(confidence, 1.0), others


def prediction_from(
    completion: ChatCompletion,
    labels: Sequence[str],
    *,
    structured: bool,
    model_id: str,
    latency_ms: float,
    default_confidence: float,
) -> Prediction:
    """The Prediction a completion stands for (fallback label when it names no department)."""
    usage = _usage(completion)
    choice = completion.choices[0] if completion.choices else None
    content = choice.message.content if choice is not None else None
    if choice is None or content is None:
        refusal = choice.message.refusal if choice is not None else None
        log.warning("LLM gave no answer (refusal=%r); using the fallback label", refusal)
        answer = Answer(None)
    else:
        reader = read_json_answer if structured else read_bare_answer
        answer = reader(content, labels)
        if answer.label is None:
            log.warning(
                "LLM answered outside the label set (%r); using the fallback label", content[:80]
            )
    if answer.label is None:
        fallback = fallback_label(labels)
        return Prediction(
            label=fallback,
            confidence=0.0,
            ranking=((fallback, 0.0),),
            model_id=model_id,
            latency_ms=latency_ms,
            usage=usage,
        )
    scores = _scores_from_logprobs(completion, answer, labels)
    others: dict[str, float]
    if scores is None:
        confidence, others = default_confidence, {}
    else:
        confidence, others = scores
    ranking = ((answer.label, confidence), *sorted(others.items(), key=lambda kv: -kv[1]))
    return Prediction(
        label=answer.label,
        confidence=confidence,
        ranking=ranking,
        model_id=model_id,
        latency_ms=latency_ms,
        usage=usage,
    )


def _usage(completion: ChatCompletion) -> dict[str, int]:
    if completion.usage is None:
        return {}
    return {
        "prompt_tokens": completion.usage.prompt_tokens,
        "completion_tokens": completion.usage.completion_tokens,
        "total_tokens": completion.usage.total_tokens,
    }


async def predict_all(
    texts: Sequence[str],
    one: Callable[[str], Awaitable[Prediction]],
    *,
    concurrency: int,
    empty: Callable[[], Prediction],
) -> list[Prediction]:
    """Predict every text with at most ``concurrency`` calls in flight; blank texts cost nothing."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def guarded(text: str) -> Prediction:
        if not text.strip():
            return empty()
        async with gate:
            return await one(text)

    return list(await asyncio.gather(*(guarded(t) for t in texts)))


async def complete(
    sdk: openai.AsyncOpenAI, doing: str, **params: object
) -> tuple[ChatCompletion, float]:
    """One chat completion and its wall time in ms; SDK errors become LLMError.

    The body goes through the client's generic ``post`` (its documented way to send a raw
    body), not ``chat.completions.create``: the typed method re-walks every message and the
    JSON schema against its TypedDicts on each call, which costs 4-8 ms per ticket (see
    bench/llm_overhead.py), while ``params`` here are already plain JSON built by ``prompts``.
    Retries, timeouts, auth, error mapping and response validation are the client's as usual.
    """
    started = time.perf_counter()
    try:
        completion = await sdk.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            body=params,
            options={"security": {"bearer_auth": True}},
        )
    except openai.OpenAIError as exc:
        raise translate_error(exc, doing) from exc
    if not isinstance(completion, ChatCompletion):  # pragma: no cover - never a stream
        raise LLMError(f"The LLM endpoint answered with a stream while {doing}.")
    return completion, (time.perf_counter() - started) * 1000.0
