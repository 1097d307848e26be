"""The prompted LLM classifier (learner ``openai``): no training job, any chat endpoint.

The model sees the departments' descriptions in the system prompt and must answer through a
JSON schema whose only field is an enum of the department names, so a conforming endpoint
cannot name a department that does not exist (and a non-conforming one is mapped to the
fallback label; see ``classifier.llm.chat``).

"Training" stores the few-shot pool: labelled examples from which the ``few_shot`` nearest to
each ticket are shown as worked examples, the team's corrections first. The artefact is JSON:
model name, prompt version, departments, few-shot settings and pool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from classifier.artifacts import pack
from classifier.errors import ModelFormatError, TrainingError
from classifier.examples import Example, Source
from classifier.json_value import JsonObject
from classifier.learners import LearnerContext
from classifier.llm.chat import (
    TOP_LOGPROBS,
    complete,
    fallback_label,
    predict_all,
    prediction_from,
)
from classifier.llm.client import OpenAIClient, OpenAILearnerBase, client_config, require_client
from classifier.llm.prompts import (
    PROMPT_VERSION,
    label_response_format,
    prompted_messages,
    system_prompt,
)
from classifier.llm.similarity import ExamplePool
from classifier.protocols import Prediction, ProgressCallback, ProgressEvent, no_progress
from classifier.taxonomy import Department, Taxonomy

KIND = "openai"

#: Longest ticket text sent to the endpoint (cost control; the head says what a ticket is about).
MAX_PROMPT_CHARS = 8_000


class PromptedClassifier:
    """Classifies tickets by asking a chat model, answer constrained to the label set."""

    learner = KIND

    def __init__(
        self,
        client: OpenAIClient | None,
        taxonomy: Taxonomy,
        *,
        model: str,
        few_shot: int = 0,
        pool: Sequence[Example] = (),
        concurrency: int = 8,
        default_confidence: float = 0.5,
        seed: int = 0,
    ) -> None:
        self._client = client
        self.taxonomy = taxonomy
        self.model = model
        self.few_shot = few_shot
        self.pool = ExamplePool(pool)
        self.concurrency = concurrency
        self.default_confidence = default_confidence
        self.seed = seed
        self.system_prompt = system_prompt(taxonomy)
        self._response_format = label_response_format(taxonomy.labels)
        self._model_id = f"{KIND}:{model}:{self._content_hash()}"

    def _content_hash(self) -> str:
        digest = hashlib.sha256(self._payload())
        return digest.hexdigest()[:12]

    @property
    def model_id(self) -> str:
        """``openai:<model>:<hash of prompt, departments and pool>``."""
        return self._model_id

    @property
    def labels(self) -> tuple[str, ...]:
        """The department names, in taxonomy order."""
        return self.taxonomy.labels

    def messages_for(self, text: str) -> list[dict[str, str]]:
        """The exact messages sent for ``text`` (few-shot examples included)."""
        text = text.strip()[:MAX_PROMPT_CHARS]
        return prompted_messages(self.system_prompt, text, self.pool.nearest(text, self.few_shot))

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text; blank texts get the fallback label without a call."""
        client = require_client(self._client)
        fallback = fallback_label(self.labels)

        def empty() -> Prediction:
            return Prediction(fallback, 0.0, ((fallback, 0.0),), model_id=self.model_id)

        async def one(text: str) -> Prediction:
            completion, latency = await complete(
                client.sdk,
                "classifying a ticket",
                model=self.model,
                messages=self.messages_for(text),
                response_format=self._response_format,
                logprobs=True,
                top_logprobs=TOP_LOGPROBS,
                temperature=0,
                max_completion_tokens=50,
                seed=self.seed,
            )
            return prediction_from(
                completion,
                self.labels,
                structured=True,
                model_id=self.model_id,
                latency_ms=latency,
                default_confidence=self.default_confidence,
            )

        return await predict_all(texts, one, concurrency=self.concurrency, empty=empty)

    def _payload(self) -> bytes:
        doc = {
            "model": self.model,
            "prompt_version": PROMPT_VERSION,
            "few_shot": self.few_shot,
            "seed": self.seed,
            "departments": [
                {"name": d.name, "description": d.description, "keywords": list(d.keywords)}
                for d in self.taxonomy
            ],
            "pool": [
                {"text": e.text, "label": e.label, "source": e.source.value}
                for e in self.pool.examples
            ],
        }
        return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")

    def to_bytes(self) -> bytes:
        """The JSON artefact: model, prompt version, departments, few-shot pool."""
        meta: JsonObject = {
            "labels": list(self.labels),
            "model": self.model,
            "prompt_version": PROMPT_VERSION,
            "few_shot": self.few_shot,
        }
        return pack(KIND, meta, self._payload())


def taxonomy_for(context: LearnerContext | None, labels: Sequence[str]) -> Taxonomy:
    """The context's departments restricted to ``labels`` (bare names when none are known)."""
    known = context.taxonomy if context is not None else None
    if known is None:
        return Taxonomy.from_labels(labels)
    departments = []
    for label in labels:
        dept = known.get(label)
        departments.append(
            dept
            if dept is not None
            else Department(name=label, description=label, channel="", emoji=f"x-{label}")
        )
    return Taxonomy(tuple(departments))


class PromptedLearner(OpenAILearnerBase):
    """Builds a PromptedClassifier; training only stores the few-shot pool."""

    name = KIND
    description = (
        "Prompted LLM classifier on any OpenAI-compatible chat endpoint (needs OPENAI_API_KEY; "
        "no training job)."
    )

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> PromptedClassifier:
        """Keep ``examples`` as the few-shot pool (corrections first) over ``labels``."""
        if not labels:
            raise TrainingError("The prompted classifier needs at least one department.")
        options, config = self.context.prompted, client_config(self.context)
        pool = sorted(
            (e for e in examples if e.label in set(labels)),
            key=lambda e: e.source is not Source.CORRECTION,
        )
        progress(ProgressEvent("train", f"stored {len(pool)} few-shot examples", 1.0))
        return PromptedClassifier(
            self.context.openai,
            taxonomy_for(self.context, labels),
            model=options.model or config.model,
            few_shot=config.few_shot if options.few_shot is None else options.few_shot,
            pool=pool,
            concurrency=config.concurrency,
            default_confidence=config.confidence_without_logprobs,
            seed=seed,
        )


def load(meta: JsonObject, payload: bytes, context: LearnerContext | None) -> PromptedClassifier:
    """Rebuild a PromptedClassifier from its artefact (the client comes from ``context``)."""
    try:
        doc = json.loads(payload.decode("utf-8"))
        departments = tuple(
            Department(
                name=d["name"],
                description=d["description"],
                channel="",
                emoji=f"label-{i}",
                keywords=tuple(d.get("keywords", ())),
            )
            for i, d in enumerate(doc["departments"])
        )
        pool = [Example(p["text"], p["label"], Source(p["source"])) for p in doc["pool"]]
        model, few_shot, seed = str(doc["model"]), int(doc["few_shot"]), int(doc["seed"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ModelFormatError("The prompted-LLM model artefact is corrupt.") from None
    if doc.get("prompt_version") != PROMPT_VERSION:
        raise ModelFormatError(
            f"This prompted-LLM model uses prompt {doc.get('prompt_version')!r} but this "
            f"version writes {PROMPT_VERSION!r}; retrain it with --learner openai."
        )
    # Channels and emoji do not matter to the prompt; the live taxonomy's are used if present.
    config = client_config(context)
    return PromptedClassifier(
        context.openai if context is not None else None,
        Taxonomy(departments),
        model=model,
        few_shot=few_shot,
        pool=pool,
        concurrency=config.concurrency,
        default_confidence=config.confidence_without_logprobs,
        seed=seed,
    )
