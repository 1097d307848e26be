"""The learning curve as a PNG (bytes): holdout accuracy per model version, corrections per week.

Two panels, one picture: how good each model was on its holdout when it was trained (is the
loop learning?) and the share of tickets people corrected each week (is the bot needing them
less?). Pure drawing over plain numbers; the figures come from the registry and the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from classifier.chart import BLUE, GRID, ORANGE, Axes, Box, Canvas, turned_label_depth

WIDTH, HEIGHT = 1100, 400
#: Above this many points or bars their values are not written over them (they would collide).
MAX_VALUES_WRITTEN = 12
PERCENT_TICKS = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)


def learning_curve_png(
    versions: Sequence[tuple[str, float]],
    weeks: Sequence[tuple[str, float]],
    title: str = "How the bot learns",
) -> bytes:
    """``versions``: (model label, holdout accuracy 0..1), oldest first; ``weeks``: (week label,
    share of tickets corrected 0..1), oldest first. Either may be empty."""
    canvas = Canvas(WIDTH, HEIGHT)
    canvas.text(WIDTH / 2, 14, title, size=15, anchor="mt")
    _, line = canvas.text_size("Ag", 13)
    left = 12 + line + 10 + canvas.text_size("100", 12)[0] + 10
    top = 14 + line + 22
    shown_versions = [versions[i][0] for i in _every(len(versions))]
    shown_weeks = [weeks[i][0] for i in _every(len(weeks))]
    depth = max(
        turned_label_depth(canvas, shown_versions), turned_label_depth(canvas, shown_weeks), 14.0
    )
    bottom = HEIGHT - depth - line - 10
    half = WIDTH / 2
    accuracy = _panel(canvas, Box(left, top, half - 20, bottom), len(versions))
    corrected = _panel(canvas, Box(half + left, top, WIDTH - 20, bottom), len(weeks))

    accuracy.y_ticks(PERCENT_TICKS)
    if versions:
        points = [(accuracy.x(i), accuracy.y(100 * a)) for i, (_, a) in enumerate(versions)]
        for i in _every(len(versions)):
            column = accuracy.x(i)
            canvas.line([(column, top), (column, bottom)], fill=GRID, width=1)
        canvas.line(points, fill=BLUE, width=2)
        for i, (x, y) in enumerate(points):
            canvas.dot(x, y, 4, fill=BLUE)
            if len(points) <= MAX_VALUES_WRITTEN:
                canvas.text(x, y - 8, f"{100 * versions[i][1]:.0f}%", size=11, anchor="mb")
        accuracy.x_ticks(_every(len(versions)), shown_versions)
    else:
        accuracy.message("no evaluated model yet")
    accuracy.frame()
    accuracy.y_label("accuracy on the holdout (%)", 12 + line / 2)
    accuracy.x_label("model", bottom + max(turned_label_depth(canvas, shown_versions), 14))

    corrected.y_ticks(PERCENT_TICKS)
    if weeks:
        for i, (_, share) in enumerate(weeks):
            x0, x1 = corrected.x(i - 0.4), corrected.x(i + 0.4)
            canvas.rectangle(Box(x0, corrected.y(100 * share), x1, bottom), fill=ORANGE)
            if len(weeks) <= MAX_VALUES_WRITTEN:
                label = f"{100 * share:.0f}%"
                canvas.text(
                    (x0 + x1) / 2, corrected.y(100 * share) - 4, label, size=11, anchor="mb"
                )
        corrected.x_ticks(_every(len(weeks)), shown_weeks)
    else:
        corrected.message("no tickets yet")
    corrected.frame()
    corrected.y_label("tickets corrected (%)", half + 12 + line / 2)
    corrected.x_label("week", bottom + max(turned_label_depth(canvas, shown_weeks), 14))
    return canvas.png()


def _panel(canvas: Canvas, box: Box, count: int) -> Axes:
    """Axes over ``count`` slots (one per point or bar) and 0..100 %."""
    return Axes(canvas, box, -0.6, max(count, 1) - 0.4, 0.0, 100.0)


def _every(count: int) -> range:
    """The slots that get a label: all of them, or every k-th past fifteen."""
    return range(0, count, max(1, count // 15))
