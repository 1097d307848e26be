"""The confusion matrix as a PNG picture (bytes), for Slack uploads and ``--png`` files."""

from __future__ import annotations

from classifier.chart import (
    INK,
    WHITE,
    Axes,
    Box,
    Canvas,
    blues,
    nice_ticks,
    short,
    tick_label,
    turned_label_depth,
)
from classifier.evaluation import ConfusionMatrix

#: Above this many labels the cells are too small for their counts to be readable.
MAX_LABELS_WITH_COUNTS = 30


def confusion_size(labels: int) -> tuple[int, int]:
    """The picture's width and height in pixels for a matrix of ``labels`` departments."""
    side = min(4.0 + 0.45 * labels, 40.0)  # inches at 100 pixels each, as matplotlib drew it
    return round((side + 1.5) * 100), round(side * 100)


def confusion_png(confusion: ConfusionMatrix, title: str = "Confusion matrix") -> bytes:
    """Render rows = true label, columns = predicted label, counts in cells; PNG bytes.

    Cells are shaded from white to dark blue by their count (the scale on the right); a count
    is written in every cell while there are at most ``MAX_LABELS_WITH_COUNTS`` labels.
    """
    n = len(confusion.labels)
    width, height = confusion_size(n)
    canvas = Canvas(width, height)
    canvas.text(width / 2, 16, title, size=15, anchor="mt")
    if n == 0:
        canvas.text(width / 2, height / 2, "no test examples", size=14)
        return canvas.png()
    size = 12 if n <= MAX_LABELS_WITH_COUNTS else 10
    names = [short(label) for label in confusion.labels]
    peak = max((max(row) for row in confusion.matrix), default=0)
    # The scale runs from 0 to the largest count, as the cells are shaded.
    scale = [t for t in nice_ticks(peak, whole=True) if t <= peak] if peak else [0.0]
    _, line = canvas.text_size("Ag", 13)
    widest = max(canvas.text_size(name, size)[0] for name in names)
    left = 12 + line + 10 + widest + 10
    scale_width = 24 + 18 + 8 + max(canvas.text_size(tick_label(t), size)[0] for t in scale) + 12
    top = 16 + line + 14
    bottom = turned_label_depth(canvas, names, size) + line + 10
    cell = min((width - left - scale_width) / n, (height - top - bottom) / n)
    # The matrix and its scale centred in what is left of the width.
    left += (width - left - scale_width - cell * n) / 2
    box = Box(left, top, left + cell * n, top + cell * n)
    axes = Axes(canvas, box, -0.5, n - 0.5, n - 0.5, -0.5)  # row 0 at the top

    for i, row in enumerate(confusion.matrix):
        for j, count in enumerate(row):
            shade = blues(count / peak if peak else 0.0)
            x0, y0 = box.left + j * cell, box.top + i * cell
            canvas.rectangle(Box(x0, y0, x0 + cell, y0 + cell), fill=shade)
            if n <= MAX_LABELS_WITH_COUNTS:
                ink = WHITE if peak and count > peak / 2 else INK
                digits = min(13.0, cell * 0.4)
                canvas.text(axes.x(j), axes.y(i), str(count), size=digits, fill=ink)
    axes.frame()
    for i, name in enumerate(names):
        row_y = axes.y(i)
        canvas.line([(box.left - 4, row_y), (box.left, row_y)], fill=INK, width=1)
        canvas.text(box.left - 7, row_y, name, size=size, anchor="rm")
    axes.x_ticks(range(n), names, size=size)
    axes.y_label("true", box.left - 10 - widest - 10 - line / 2)
    axes.x_label("predicted", box.bottom + turned_label_depth(canvas, names, size))

    # The colour scale: 0 at the bottom, the largest count at the top.
    bar = Box(box.right + 24, box.top, box.right + 42, box.bottom)
    steps = max(int(bar.height), 1)
    for k in range(steps):
        y1 = bar.bottom - k * bar.height / steps
        band = Box(bar.left, y1 - bar.height / steps, bar.right, y1 + 0.5)
        canvas.rectangle(band, fill=blues(k / max(steps - 1, 1)))
    scale_axes = Axes(canvas, bar, 0, 1, 0, peak or 1)
    for value in scale:
        tick_y = scale_axes.y(value)
        canvas.line([(bar.right, tick_y), (bar.right + 4, tick_y)], fill=INK, width=1)
        canvas.text(bar.right + 7, tick_y, tick_label(value), size=size, anchor="lm")
    scale_axes.frame()
    return canvas.png()
