"""The confusion matrix picture: a PNG of the expected size, cells shaded by their counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from classifier.chart import blues
from classifier.confusion_png import confusion_png, confusion_size
from classifier.evaluation import ConfusionMatrix

LABELS = ("Technical", "Billing", "Account", "Product", "Other")
MATRIX = ((40, 2, 1, 0, 3), (1, 35, 4, 0, 0), (2, 3, 30, 1, 0), (0, 0, 1, 25, 2), (5, 0, 0, 3, 12))


def _pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def _count(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((pixels == np.array(colour)).all(axis=-1).sum())


def test_the_picture_shades_each_cell_by_its_count() -> None:
    png = confusion_png(ConfusionMatrix(LABELS, MATRIX), "Model #7 on 171 held-out tickets")
    pixels = _pixels(png)
    assert pixels.shape[1::-1] == confusion_size(len(LABELS)) == (775, 625)
    # The largest count's cell is the darkest blue; a 25 (Product, Product) is a middle blue.
    assert _count(pixels, blues(1.0)) > 3000
    assert _count(pixels, blues(25 / 40)) > 3000
    assert _count(pixels, blues(12 / 40)) > 3000
    assert png == confusion_png(ConfusionMatrix(LABELS, MATRIX), "Model #7 on 171 held-out tickets")


def test_an_all_zero_matrix_has_no_dark_cell() -> None:
    zeros = tuple(tuple(0 for _ in LABELS) for _ in LABELS)
    pixels = _pixels(confusion_png(ConfusionMatrix(LABELS, zeros)))
    assert _count(pixels, blues(1.0)) < 200  # the colour scale's top only
    assert _count(pixels, blues(0.0)) > 100_000  # every cell the lightest shade


@pytest.mark.parametrize("n", [0, 1, 40])
def test_any_number_of_labels_draws(n: int) -> None:
    labels = tuple(f"Department number {i} with a long name" for i in range(n))
    matrix = tuple(tuple(5 if i == j else 1 for j in range(n)) for i in range(n))
    pixels = _pixels(confusion_png(ConfusionMatrix(labels, matrix)))
    assert pixels.shape[1::-1] == confusion_size(n)
    if n:
        assert _count(pixels, blues(1.0)) > 0
