"""The drawing kit behind the report pictures: ticks, colours, text, deterministic PNGs, and a
bot that starts without Pillow and draws without matplotlib."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.chart import PALETTE, Axes, Box, Canvas, blues, nice_ticks, short, tick_label

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("high", "whole", "expected"),
    [
        (40, True, (0, 10, 20, 30, 40)),
        (41, True, (0, 10, 20, 30, 40, 50)),
        (3, True, (0, 1, 2, 3)),
        (0, True, (0, 1)),
        (20.7, False, (0, 5, 10, 15, 20, 25)),
        (1, False, (0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        (12, True, (0, 5, 10, 15)),  # 2.5 is no step for counts
    ],
)
def test_ticks_are_round_and_cover_the_highest_value(
    high: float, whole: bool, expected: tuple[float, ...]
) -> None:
    assert nice_ticks(high, whole=whole) == pytest.approx(expected)


def test_labels_and_colours() -> None:
    assert [tick_label(v) for v in (0.0, 2.5, 10.0, 0.25)] == ["0", "2.5", "10", "0.25"]
    assert blues(0) == (247, 251, 255)
    assert blues(1) == (8, 48, 107)
    assert blues(-3) == blues(0)
    assert sum(blues(0.3)) > sum(blues(0.6))  # darker with the count
    assert len(set(PALETTE)) == len(PALETTE) == 20
    assert short("x" * 40) == "x" * 27 + "…"
    assert short("Billing") == "Billing"


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_a_canvas_gives_the_same_png_for_the_same_drawing() -> None:
    def draw() -> bytes:
        canvas = Canvas(200, 120)
        axes = Axes(canvas, Box(40, 10, 190, 80), -0.5, 2.5, 0, 10)
        axes.y_ticks(nice_ticks(10, whole=True))
        axes.x_ticks([0, 1, 2], ["Technical", "Billing", "Account"])
        canvas.line([(axes.x(0), axes.y(2)), (axes.x(2), axes.y(9))], fill=(255, 0, 0), width=2)
        axes.frame()
        return canvas.png()

    first = draw()
    assert first == draw()
    image = _image(first)
    assert image.format == "PNG"
    assert image.size == (200, 120)
    pixels = np.asarray(image).astype(int)
    red = ((pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum()
    assert red > 100  # the line is there


def test_turned_text_is_drawn_where_its_anchor_says() -> None:
    canvas = Canvas(200, 200)
    canvas.text(100, 100, "Technical", size=14, fill=(0, 0, 0), anchor="rm", angle=45)
    canvas.text(150, 150, "true", size=14, fill=(0, 0, 0), anchor="mm", angle=90)
    image = _image(canvas.png()).convert("L")
    ink = image.point(lambda v: 255 if v < 128 else 0)
    # The 45-degree label ends at its anchor and runs down-left from it.
    assert ink.crop((40, 95, 102, 160)).getbbox() is not None
    assert ink.crop((110, 0, 140, 90)).getbbox() is None
    # The upright one is taller than wide, around its centre.
    left, top, right, bottom = ink.crop((130, 120, 170, 180)).getbbox() or (0, 0, 0, 0)
    assert bottom - top > right - left > 0


def test_the_bot_starts_without_pillow_and_draws_without_matplotlib() -> None:
    script = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # importing it now fails\n"
        "import bot.cli, bot.runtime, bot.app, admin.report, admin.desk_stats_png\n"
        "print('PIL' in sys.modules)\n"
        "from classifier.learning_curve_png import learning_curve_png\n"
        "png = learning_curve_png([('#1', 0.8)], [('2026-W01', 0.1)])\n"
        "print('PIL' in sys.modules, png[:8] == bytes.fromhex('89504e470d0a1a0a'))\n"
    )
    done = subprocess.run(  # noqa: S603  # this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["False", "True", "True"]
