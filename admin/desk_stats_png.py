"""The desk's picture: tickets per day by department, and the median first response per day.

Two panels, one PNG: stacked bars of the tickets that came in each (UTC) day, coloured by
department (a legend under the title, each day's total over its bar), and a line of that day's
median time to first response. Pure drawing over a ``DeskStats``; the bot uploads it under
``/triage stats``, ``triage stats --png`` writes it.
"""

from __future__ import annotations

from admin.desk_stats import DeskStats
from classifier.chart import (
    BLUE,
    INK,
    Axes,
    Box,
    Canvas,
    department_colour,
    nice_ticks,
    short,
    tick_label,
    turned_label_depth,
)

WIDTH, HEIGHT = 1100, 700
#: Above this many days the daily totals are not written over the bars (they would collide).
MAX_TOTALS_WRITTEN = 31


def desk_stats_png(stats: DeskStats) -> bytes:
    """The two panels as PNG bytes."""
    days = [d.day[5:] for d in stats.daily]  # MM-DD
    names = [d.department for d in stats.departments]
    totals = [sum(d.tickets.get(name, 0) for name in names) for d in stats.daily]
    medians = [
        None if d.median_first_response is None else d.median_first_response / 60
        for d in stats.daily
    ]
    canvas = Canvas(WIDTH, HEIGHT)
    title = f"Tickets per day by department, last {stats.days} days (UTC)"
    canvas.text(WIDTH / 2, 14, title, size=15, anchor="mt")
    _, line = canvas.text_size("Ag", 13)
    legend_bottom = _legend(canvas, names, 14 + line + 12)

    # A tenth of headroom: the highest bar's total and the highest point stay inside the frame.
    ticket_ticks = nice_ticks(1.1 * max(totals, default=0), whole=True)
    minute_ticks = nice_ticks(1.1 * max((m for m in medians if m is not None), default=0))
    widest = max(canvas.text_size(tick_label(t), 12)[0] for t in (*ticket_ticks, *minute_ticks))
    left = 12 + line + 10 + widest + 10
    step = max(1, len(days) // 15)
    shown = list(range(0, len(days), step))
    bottom = HEIGHT - max(turned_label_depth(canvas, [days[i] for i in shown]), 16) - 10
    top = legend_bottom + 14
    split = top + (bottom - top) * 0.55
    slots = (-0.6, max(len(days), 1) - 0.4)
    bars = Axes(canvas, Box(left, top, WIDTH - 20, split - 12), *slots, 0, ticket_ticks[-1])
    response = Axes(canvas, Box(left, split + 12, WIDTH - 20, bottom), *slots, 0, minute_ticks[-1])

    bars.y_ticks(ticket_ticks)
    for i, day in enumerate(stats.daily):
        x0, x1 = bars.x(i - 0.4), bars.x(i + 0.4)
        base = 0
        for k, name in enumerate(names):
            count = day.tickets.get(name, 0)
            if count:
                segment = Box(x0, bars.y(base + count), x1, bars.y(base))
                canvas.rectangle(segment, fill=department_colour(k))
            base += count
        if len(days) <= MAX_TOTALS_WRITTEN and totals[i]:
            canvas.text((x0 + x1) / 2, bars.y(totals[i]) - 3, str(totals[i]), size=10, anchor="mb")
    if not any(totals):
        bars.message("no tickets in these days")
    bars.frame()
    bars.y_label("tickets", 12 + line / 2)

    response.y_ticks(minute_ticks)
    points = [(response.x(i), response.y(m)) for i, m in enumerate(medians) if m is not None]
    if points:
        canvas.line(points, fill=BLUE, width=2)
        for x, y in points:
            canvas.dot(x, y, 4, fill=BLUE)
    else:
        response.message("no first responses yet")
    response.frame()
    response.y_label("median first response (min)", 12 + line / 2)
    response.x_ticks(shown, [days[i] for i in shown])
    return canvas.png()


def _legend(canvas: Canvas, names: list[str], top: float) -> float:
    """One swatch and name per department, centred in rows under the title; its bottom edge."""
    if not names:
        return top
    _, line = canvas.text_size("Ag", 12)
    entries = [(short(name), 14 + 6 + canvas.text_size(short(name), 12)[0] + 18) for name in names]
    rows: list[list[int]] = [[]]
    used = 0.0
    for index, (_, width) in enumerate(entries):
        if rows[-1] and used + width > canvas.width - 80:
            rows.append([])
            used = 0.0
        rows[-1].append(index)
        used += width
    y = top
    for row in rows:
        x = (canvas.width - sum(entries[i][1] for i in row) + 18) / 2
        for index in row:
            label, width = entries[index]
            canvas.rectangle(
                Box(x, y + line / 2 - 7, x + 14, y + line / 2 + 7),
                fill=department_colour(index),
            )
            canvas.text(x + 20, y + line / 2, label, size=12, fill=INK, anchor="lm")
            x += width
        y += line + 6
    return y
