"""The desk's picture: one colour per department in the bars and the legend, the first
response line, a PNG of the expected size."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from admin.desk_stats import Backlog, DayStats, DepartmentStats, DeskStats, Spread
from admin.desk_stats_png import HEIGHT, WIDTH, desk_stats_png
from classifier.chart import BLUE, department_colour

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NAMES = ("Technical", "Billing", "Account", "Product", "Other")


def _department(name: str) -> DepartmentStats:
    nothing = Spread(0, None, None)
    return DepartmentStats(name, 0, 0, nothing, nothing, Backlog(name, 0, 0, None), 0, 0, 0, 0)


def _stats(days: int, tickets: dict[str, int], median: float | None = 900.0) -> DeskStats:
    daily = tuple(
        DayStats((NOW - timedelta(days=days - 1 - i)).date().isoformat(), tickets, median)
        for i in range(days)
    )
    return DeskStats(
        NOW - timedelta(days=days), NOW, days, tuple(_department(n) for n in NAMES), daily
    )


def _pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def _count(pixels: np.ndarray, colour: tuple[int, int, int], near: int = 0) -> int:
    """Pixels of ``colour``, or within ``near`` of it on each channel (anti-aliased lines)."""
    return int((abs(pixels - np.array(colour)) <= near).all(axis=-1).sum())


def test_each_department_has_its_colour_in_the_bars_and_the_legend() -> None:
    stats = _stats(7, {"Technical": 6, "Billing": 3, "Account": 1, "Product": 0, "Other": 2})
    png = desk_stats_png(stats)
    pixels = _pixels(png)
    assert pixels.shape[1::-1] == (WIDTH, HEIGHT) == (1100, 700)
    legend = pixels[:80]
    counts = {name: _count(pixels, department_colour(i)) for i, name in enumerate(NAMES)}
    for i, _name in enumerate(NAMES):
        assert _count(legend, department_colour(i)) > 50  # its swatch
    # Bars: more tickets, more of the department's colour; Product's colour is its swatch only.
    assert counts["Technical"] > counts["Billing"] > counts["Other"] > counts["Account"]
    assert counts["Product"] == _count(legend, department_colour(NAMES.index("Product")))
    assert _count(pixels[400:], BLUE, near=40) > 1000  # the first-response line, lower panel
    assert png == desk_stats_png(stats)


def test_no_tickets_and_no_responses_draw_empty_panels() -> None:
    pixels = _pixels(desk_stats_png(_stats(3, {}, median=None)))
    assert pixels.shape[1::-1] == (WIDTH, HEIGHT)
    assert _count(pixels[400:], BLUE, near=40) == 0  # no line in the lower panel
    empty = DeskStats(NOW - timedelta(days=1), NOW, 1, (), ())
    assert _pixels(desk_stats_png(empty)).shape[1::-1] == (WIDTH, HEIGHT)


def test_thirty_days_label_every_other_day() -> None:
    png = desk_stats_png(_stats(30, {"Billing": 4}))
    assert _pixels(png).shape[1::-1] == (WIDTH, HEIGHT)
