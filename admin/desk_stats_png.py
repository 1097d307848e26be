"""The desk's picture: tickets per day by department, and the median first response per day.

Two panels, one PNG: stacked bars of the tickets that came in each (UTC) day, coloured by
department, and a line of that day's median time to first response. Pure plotting over a
``DeskStats``; the bot uploads it under ``/triage stats``, ``triage stats --png`` writes it.
"""

from __future__ import annotations

import io

from admin.desk_stats import DeskStats
from classifier.plotting import pyplot


def desk_stats_png(stats: DeskStats) -> bytes:
    """The two panels as PNG bytes."""
    days = [d.day[5:] for d in stats.daily]  # MM-DD
    names = [d.department for d in stats.departments]
    plt = pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), dpi=100, sharex=True)
    try:
        positions = range(len(days))
        base = [0] * len(days)
        colours = plt.get_cmap("tab10")
        for i, name in enumerate(names):
            heights = [d.tickets.get(name, 0) for d in stats.daily]
            top.bar(positions, heights, bottom=base, label=name, color=colours(i % 10))
            base = [b + h for b, h in zip(base, heights, strict=True)]
        top.set_ylabel("tickets")
        top.set_title(f"Tickets per day by department, last {stats.days} days (UTC)")
        if names:
            top.legend(loc="upper left", fontsize="small", ncols=min(len(names), 5))
        top.grid(alpha=0.3, axis="y")
        medians = [
            None if d.median_first_response is None else d.median_first_response / 60
            for d in stats.daily
        ]
        points = [(i, m) for i, m in enumerate(medians) if m is not None]
        if points:
            bottom.plot([i for i, _ in points], [m for _, m in points], marker="o", color="#2e6fbf")
        else:
            bottom.text(0.5, 0.5, "no first responses yet", ha="center", transform=bottom.transAxes)
        bottom.set_ylabel("median first response (min)")
        bottom.set_ylim(bottom=0)
        bottom.grid(alpha=0.3)
        step = max(1, len(days) // 15)
        bottom.set_xticks(list(positions)[::step], labels=days[::step], rotation=45)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
