"""The learning curve as a PNG (bytes): holdout accuracy per model version, corrections per week.

Two panels, one picture: how good each model was on its holdout when it was trained (is the
loop learning?) and the share of tickets people corrected each week (is the bot needing them
less?). Pure plotting over plain numbers; the figures come from the registry and the database.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from classifier.plotting import pyplot


def learning_curve_png(
    versions: Sequence[tuple[str, float]],
    weeks: Sequence[tuple[str, float]],
    title: str = "How the bot learns",
) -> bytes:
    """``versions``: (model label, holdout accuracy 0..1), oldest first; ``weeks``: (week label,
    share of tickets corrected 0..1), oldest first. Either may be empty."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    try:
        if versions:
            left.plot(
                range(len(versions)), [100 * a for _, a in versions], marker="o", color="#2e6fbf"
            )
            left.set_xticks(range(len(versions)), labels=[v for v, _ in versions], rotation=45)
        else:
            left.text(0.5, 0.5, "no evaluated model yet", ha="center", transform=left.transAxes)
        left.set_ylim(0, 100)
        left.set_ylabel("accuracy on the holdout (%)")
        left.set_xlabel("model")
        left.grid(alpha=0.3)
        if weeks:
            right.bar(range(len(weeks)), [100 * r for _, r in weeks], color="#d98b2b")
            right.set_xticks(range(len(weeks)), labels=[w for w, _ in weeks], rotation=45)
        else:
            right.text(0.5, 0.5, "no tickets yet", ha="center", transform=right.transAxes)
        right.set_ylim(0, 100)
        right.set_ylabel("tickets corrected (%)")
        right.set_xlabel("week")
        right.grid(alpha=0.3, axis="y")
        figure.suptitle(title)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
