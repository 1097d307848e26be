"""Token usage summed over predictions, and what 1,000 tickets would cost at list price."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from classifier.llm.client import Price
from classifier.protocols import Prediction


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of ``model``: an exact entry, else the longest key it starts with.

    A fine-tune ``ft:gpt-4o-mini-2024-07-18:org:suffix:id`` matches ``ft:gpt-4o-mini``; a dated
    snapshot ``gpt-4o-mini-2024-07-18`` matches ``gpt-4o-mini``.
    """
    if model in prices:
        return prices[model]
    matches = [key for key in prices if model.startswith(key)]
    return prices[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class UsageSummary:
    """Tokens per classification call and the estimated cost of 1,000 tickets (USD)."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_per_1000_usd: float | None

    @property
    def prompt_tokens_per_call(self) -> float:
        """Average prompt tokens per call (0 when no call was made)."""
        return self.prompt_tokens / self.calls if self.calls else 0.0

    @property
    def completion_tokens_per_call(self) -> float:
        """Average completion tokens per call."""
        return self.completion_tokens / self.calls if self.calls else 0.0


def summarise_usage(
    predictions: Iterable[Prediction], model: str, prices: Mapping[str, Price]
) -> UsageSummary:
    """Sum ``Prediction.usage`` over the calls that were made; price them per 1,000 tickets.

    The cost is None when the model is not in the price table (say so rather than guess).
    """
    calls = prompt = completion = 0
    for prediction in predictions:
        if not prediction.usage:
            continue
        calls += 1
        prompt += prediction.usage.get("prompt_tokens", 0)
        completion += prediction.usage.get("completion_tokens", 0)
    price = price_for(model, prices)
    cost = None
    if price is not None and calls:
        per_call = (
            prompt * price.input_per_million + completion * price.output_per_million
        ) / 1_000_000
        cost = per_call / calls * 1000
    return UsageSummary(calls, prompt, completion, cost)
