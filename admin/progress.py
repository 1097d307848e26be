"""A retrain's progress as one block of text that is re-rendered as events arrive.

The bot posts it once and then updates that one message; the terminal can print it. Plain
text with *bold* markers (Slack mrkdwn and readable anywhere), no Slack imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from classifier.protocols import ProgressEvent

#: The stages of a retrain, in order.
RETRAIN_STAGES: tuple[str, ...] = ("assemble", "generate", "train", "evaluate", "decide")

STAGE_TITLES: dict[str, str] = {
    "assemble": "Assemble data",
    "generate": "Generate examples",
    "train": "Train candidate",
    "evaluate": "Evaluate on holdout",
    "decide": "Decide",
}

_ICONS = {"pending": "○", "running": "◐", "done": "●", "skipped": "–", "failed": "✕"}


@dataclass
class _Line:
    state: str = "pending"
    message: str = ""
    fraction: float | None = None


@dataclass
class ProgressBoard:
    """Accumulates ProgressEvents into one line per stage.

    An event for a stage marks every earlier stage done; a message starting with "skipped"
    marks the stage skipped; ``finish`` closes the board with a final line.
    """

    title: str
    stages: tuple[str, ...] = RETRAIN_STAGES
    lines: dict[str, _Line] = field(default_factory=dict)
    footer: str = ""

    def __post_init__(self) -> None:
        for stage in self.stages:
            self.lines.setdefault(stage, _Line())

    def update(self, event: ProgressEvent) -> None:
        """Apply one event."""
        if event.stage not in self.lines:
            return
        index = self.stages.index(event.stage)
        for earlier in self.stages[:index]:
            if self.lines[earlier].state in ("pending", "running"):
                self.lines[earlier].state = "done"
        line = self.lines[event.stage]
        if event.message.startswith("skipped"):
            line.state = "skipped"
        elif event.fraction is not None and event.fraction >= 1.0:
            line.state = "done"
        else:
            line.state = "running"
        line.message = event.message or line.message
        line.fraction = event.fraction

    def finish(self, footer: str, *, failed: bool = False) -> None:
        """Close the board: running stages end done (or failed), ``footer`` is the outcome."""
        for line in self.lines.values():
            if line.state == "running":
                line.state = "failed" if failed else "done"
        self.footer = footer

    def render(self) -> str:
        """The board as text."""
        rows = [f"*{self.title}*"]
        for stage in self.stages:
            line = self.lines[stage]
            percent = (
                f" {line.fraction:.0%}"
                if line.state == "running" and line.fraction is not None
                else ""
            )
            detail = f" — {line.message}" if line.message else ""
            rows.append(f"{_ICONS[line.state]} {STAGE_TITLES.get(stage, stage)}{percent}{detail}")
        if self.footer:
            rows.append(self.footer)
        return "\n".join(rows)
