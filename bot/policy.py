"""Where a ticket's card goes: the routing rules shared by the router and the corrections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from classifier.taxonomy import Department


@dataclass(frozen=True)
class RoutingPolicy:
    """The routing settings (from ``TRIAGE_*``)."""

    support_channels: frozenset[str]
    confidence_threshold: float
    triage_channel: str | None
    shadow_mode: bool
    redact_pii: bool
    max_attempts: int = 8
    #: How long a process holds a ticket it routes before another replica may take it over
    #: (longer than any one run: a few Slack calls with their bounded retries).
    lease_seconds: float = 120.0
    #: The threshold fitted on how the model's answers turned out (None: the fixed one).
    adaptive_threshold: Callable[[], float] | None = None
    #: TRIAGE_PUBLIC_REPLY: "minimal" or "detailed"; None: minimal in direct messages and in
    #: channels shared with another organisation, detailed elsewhere.
    public_reply: str | None = None

    def needs_person(self, confidence: float) -> bool:
        """Whether the model is too unsure to route on its own."""
        if self.adaptive_threshold is not None:
            return confidence < self.adaptive_threshold()
        return confidence < self.confidence_threshold

    def destination(self, dept: Department, *, decided_by_person: bool, confidence: float) -> str:
        """The channel of the card: the department's, or triage when the model is unsure."""
        if not decided_by_person and self.needs_person(confidence) and self.triage_channel:
            return self.triage_channel
        return dept.channel

    def retry_delay(self, attempts: int) -> float:
        """Seconds before routing a ticket again after ``attempts`` transient failures."""
        return float(min(2 ** max(attempts - 1, 0), 60))
