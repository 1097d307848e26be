"""The learning curve picture: accuracy per model (a blue line), corrections per week (bars)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from classifier.chart import BLUE, ORANGE
from classifier.learning_curve_png import HEIGHT, WIDTH, learning_curve_png


def _pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def _count(pixels: np.ndarray, colour: tuple[int, int, int], near: int = 0) -> int:
    """Pixels of ``colour``, or within ``near`` of it on each channel (anti-aliased lines)."""
    return int((abs(pixels - np.array(colour)) <= near).all(axis=-1).sum())


def test_both_panels_draw_their_figures() -> None:
    versions = [("#1", 0.81), ("#2", 0.86), ("#5", 0.93)]
    weeks = [("2026-W40", 0.2), ("2026-W41", 0.15)]
    png = learning_curve_png(versions, weeks)
    pixels = _pixels(png)
    assert pixels.shape[1::-1] == (WIDTH, HEIGHT) == (1100, 400)
    assert _count(pixels[:, : WIDTH // 2], BLUE, near=40) > 300  # the line and its markers, left
    assert _count(pixels[:, WIDTH // 2 :], ORANGE) > 5000  # the bars, right
    assert _count(pixels[:, WIDTH // 2 :], BLUE, near=40) == 0
    assert png == learning_curve_png(versions, weeks)


def test_a_higher_share_corrected_is_a_taller_bar() -> None:
    low = _count(_pixels(learning_curve_png([], [("W1", 0.1)])), ORANGE)
    high = _count(_pixels(learning_curve_png([], [("W1", 0.4)])), ORANGE)
    assert high > 3 * low > 0


def test_nothing_corrected_is_no_bar() -> None:
    pixels = _pixels(learning_curve_png([("#1", 0.5)], [("W1", 0.0), ("W2", 0.0)]))
    assert _count(pixels, ORANGE, near=40) == 0


def test_empty_figures_draw_empty_panels() -> None:
    pixels = _pixels(learning_curve_png([], []))
    assert pixels.shape[1::-1] == (WIDTH, HEIGHT)
    assert _count(pixels, BLUE, near=40) == _count(pixels, ORANGE, near=40) == 0
