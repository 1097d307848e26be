"""The confusion matrix as a PNG picture (bytes), for Slack uploads and ``--png`` files."""

from __future__ import annotations

import io

from classifier.evaluation import ConfusionMatrix
from classifier.plotting import pyplot

#: Above this many labels the cells are too small for their counts to be readable.
MAX_LABELS_WITH_COUNTS = 30


def confusion_png(confusion: ConfusionMatrix, title: str = "Confusion matrix") -> bytes:
    """Render rows = true label, columns = predicted label, counts in cells; PNG bytes."""
    n = len(confusion.labels)
    side = min(4.0 + 0.45 * n, 40.0)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    try:
        image = axes.imshow(confusion.matrix, cmap="Blues", aspect="equal")
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_xticks(range(n), labels=confusion.labels, rotation=45, ha="right")
        axes.set_yticks(range(n), labels=confusion.labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(title)
        if n <= MAX_LABELS_WITH_COUNTS:
            peak = max((max(row) for row in confusion.matrix), default=0)
            for i, row in enumerate(confusion.matrix):
                for j, count in enumerate(row):
                    colour = "white" if peak and count > peak / 2 else "black"
                    axes.text(j, i, str(count), ha="center", va="center", color=colour)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
