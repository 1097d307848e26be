"""The pieces the report pictures are drawn with, over Pillow: a canvas, axes, ticks, colours.

The bot draws three pictures (the confusion matrix, the learning curve, the desk's tickets per
day). matplotlib drew them until #17: it and its own dependencies were about 98 MB of the
runtime install, for three charts; Pillow alone is what matplotlib wrote its PNGs with.

Everything is drawn at ``SCALE`` times the picture's size and scaled down once at the end:
Pillow draws lines and circles without anti-aliasing, and the scaling smooths them. The font is
the one Pillow bundles (Aileron, scalable since Pillow 10.1), so the same figures give the same
bytes on every machine with the same Pillow. Pillow is imported when a canvas is made, not when
the bot starts (the bot draws only when someone asks for a picture).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import ImageFont

#: Drawn at this many times the final size, then scaled down (anti-aliasing).
SCALE = 2

Colour = tuple[int, int, int]

INK: Colour = (38, 38, 38)
MUTED: Colour = (90, 90, 90)
GRID: Colour = (226, 226, 226)
WHITE: Colour = (255, 255, 255)
BLUE: Colour = (46, 111, 191)
ORANGE: Colour = (217, 139, 43)

#: One colour per department, in order: Tableau's ten, then their lighter twins (tab20), so up
#: to twenty departments get distinct colours before any repeats.
PALETTE: tuple[Colour, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)

#: ColorBrewer's sequential "Blues" (the confusion matrix's cells), light to dark.
_BLUES: tuple[Colour, ...] = (
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
)

#: Labels longer than this are cut with an ellipsis: a long department name must not squeeze
#: the chart out of its picture.
MAX_LABEL_CHARS = 28


def blues(fraction: float) -> Colour:
    """The "Blues" colour at ``fraction`` (0 = lightest, 1 = darkest), interpolated."""
    position = min(max(fraction, 0.0), 1.0) * (len(_BLUES) - 1)
    low = min(int(position), len(_BLUES) - 2)
    weight = position - low
    a, b = _BLUES[low], _BLUES[low + 1]
    return (
        round(a[0] + (b[0] - a[0]) * weight),
        round(a[1] + (b[1] - a[1]) * weight),
        round(a[2] + (b[2] - a[2]) * weight),
    )


def department_colour(index: int) -> Colour:
    """The colour of the ``index``-th department (the palette repeats past twenty)."""
    return PALETTE[index % len(PALETTE)]


def short(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    """``label``, cut to ``limit`` characters with an ellipsis."""
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def nice_ticks(high: float, most: int = 6, *, whole: bool = False) -> tuple[float, ...]:
    """Ticks from 0 to at least ``high`` at a round step (1, 2, 2.5 or 5 times a power of ten),
    at most about ``most`` of them; ``whole`` keeps the step a whole number (counts)."""
    if not math.isfinite(high) or high <= 0:
        high = 1.0
    rough = high / max(most - 1, 1)
    magnitude = 10.0 ** math.floor(math.log10(rough))
    step = 10 * magnitude
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = multiple * magnitude
        if whole and (candidate < 1 or candidate != int(candidate)):
            continue
        if candidate >= rough:
            step = candidate
            break
    if whole:
        step = max(step, 1.0)
    count = math.ceil(high / step - 1e-9)
    return tuple(round(i * step, 10) for i in range(count + 1))


def tick_label(value: float) -> str:
    """A tick's text: no trailing zeros ("5", "2.5", "0.25")."""
    return f"{value:g}"


@dataclass(frozen=True)
class Box:
    """A rectangle in picture pixels (before ``SCALE``): left, top, right, bottom."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


class Canvas:
    """A white picture of ``width`` x ``height`` pixels to draw on; ``png()`` gives its bytes.

    Coordinates are the final picture's pixels (floats allowed); each method scales them.
    """

    def __init__(self, width: int, height: int) -> None:
        from PIL import Image, ImageDraw  # at draw time (module docstring)

        self.width = width
        self.height = height
        self._image = Image.new("RGB", (width * SCALE, height * SCALE), WHITE)
        self._draw = ImageDraw.Draw(self._image)
        self._fonts: dict[float, ImageFont.FreeTypeFont] = {}

    def _font(self, size: float) -> ImageFont.FreeTypeFont:
        # A font per canvas: a FreeType face is not for two threads at once, and pictures are
        # drawn in worker threads; loading the bundled font takes microseconds.
        font = self._fonts.get(size)
        if font is None:
            from PIL import ImageFont

            loaded = ImageFont.load_default(size=size * SCALE)
            if not isinstance(loaded, ImageFont.FreeTypeFont):  # Pillow built without FreeType
                raise RuntimeError("Pillow has no FreeType: the pictures need its bundled font")
            font = self._fonts[size] = loaded
        return font

    def text_size(self, text: str, size: float) -> tuple[float, float]:
        """The width and line height of ``text`` at ``size`` pixels."""
        font = self._font(size)
        left, _, right, _ = font.getbbox(text, anchor="ls")
        ascent, descent = font.getmetrics()
        return (right - left) / SCALE, (ascent + descent) / SCALE

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 13,
        fill: Colour = INK,
        anchor: str = "mm",
        angle: float = 0,
    ) -> None:
        """``text`` with its ``anchor`` at (x, y), turned ``angle`` degrees anticlockwise.

        ``anchor`` is two letters, Pillow's way: horizontal l(eft), m(iddle), r(ight), then
        vertical t(op), m(iddle), b(ottom) of the (unturned) line box.
        """
        font = self._font(size)
        if not angle:
            vertical = {"t": "a", "m": "m", "b": "d"}[anchor[1]]
            self._draw.text(
                (x * SCALE, y * SCALE), text, font=font, fill=fill, anchor=anchor[0] + vertical
            )
            return
        self._turned_text(x, y, text, font, fill, anchor, angle)

    def _turned_text(
        self,
        x: float,
        y: float,
        text: str,
        font: ImageFont.FreeTypeFont,
        fill: Colour,
        anchor: str,
        angle: float,
    ) -> None:
        from PIL import Image, ImageDraw

        left, _, right, _ = font.getbbox(text, anchor="ls")
        ascent, descent = font.getmetrics()
        pad = 2 * SCALE
        width, height = int(right - left) + 2 * pad, ascent + descent + 2 * pad
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).text((pad - left, pad), text, font=font, fill=255, anchor="la")
        # The anchor in the mask, then where turning about the centre takes it.
        ax = {"l": pad, "m": width / 2, "r": width - pad}[anchor[0]]
        ay = {"t": pad, "m": height / 2, "b": height - pad}[anchor[1]]
        turned = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        radians = math.radians(angle)
        dx, dy = ax - width / 2, ay - height / 2
        tx = turned.width / 2 + dx * math.cos(radians) + dy * math.sin(radians)
        ty = turned.height / 2 - dx * math.sin(radians) + dy * math.cos(radians)
        self._image.paste(fill, (round(x * SCALE - tx), round(y * SCALE - ty)), turned)

    def line(self, points: Sequence[tuple[float, float]], *, fill: Colour, width: float) -> None:
        """A polyline through ``points``, ``width`` pixels wide."""
        scaled = [(px * SCALE, py * SCALE) for px, py in points]
        self._draw.line(scaled, fill=fill, width=max(1, round(width * SCALE)), joint="curve")

    def rectangle(
        self, box: Box, *, fill: Colour | None, outline: Colour | None = None, width: float = 1
    ) -> None:
        """A filled and/or outlined rectangle; nothing where it is empty (a bar of 0 %)."""
        left, top = round(box.left * SCALE), round(box.top * SCALE)
        right, bottom = round(box.right * SCALE) - 1, round(box.bottom * SCALE) - 1
        if right < left or bottom < top:
            return
        self._draw.rectangle(
            (left, top, right, bottom),
            fill=fill,
            outline=outline,
            width=max(1, round(width * SCALE)),
        )

    def dot(self, x: float, y: float, radius: float, *, fill: Colour) -> None:
        """A filled circle: a marker on a line."""
        r = radius * SCALE
        self._draw.ellipse((x * SCALE - r, y * SCALE - r, x * SCALE + r, y * SCALE + r), fill=fill)

    def png(self) -> bytes:
        """The picture at its final size, as PNG bytes."""
        from PIL import Image

        final = self._image.resize((self.width, self.height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        final.save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass(frozen=True)
class Axes:
    """A plot area on a canvas: data coordinates to pixels, a frame, ticks, labels and grid."""

    canvas: Canvas
    box: Box
    x_low: float
    x_high: float
    y_low: float
    y_high: float

    def x(self, value: float) -> float:
        """The pixel column of data ``value``."""
        span = self.x_high - self.x_low or 1.0
        return self.box.left + (value - self.x_low) / span * self.box.width

    def y(self, value: float) -> float:
        """The pixel row of data ``value`` (up is more)."""
        span = self.y_high - self.y_low or 1.0
        return self.box.bottom - (value - self.y_low) / span * self.box.height

    def y_ticks(self, ticks: Sequence[float], *, grid: bool = True, size: float = 12) -> None:
        """Tick marks and labels on the left edge; light horizontal grid lines."""
        for value in ticks:
            row = self.y(value)
            if grid:
                self.canvas.line([(self.box.left, row), (self.box.right, row)], fill=GRID, width=1)
            self.canvas.line([(self.box.left - 4, row), (self.box.left, row)], fill=INK, width=1)
            self.canvas.text(self.box.left - 7, row, tick_label(value), size=size, anchor="rm")

    def x_ticks(
        self,
        positions: Sequence[float],
        labels: Sequence[str],
        *,
        grid: bool = False,
        size: float = 12,
    ) -> None:
        """Tick marks under the bottom edge with labels turned 45 degrees (long names fit)."""
        for position, label in zip(positions, labels, strict=True):
            column = self.x(position)
            if grid:
                self.canvas.line(
                    [(column, self.box.top), (column, self.box.bottom)], fill=GRID, width=1
                )
            self.canvas.line(
                [(column, self.box.bottom), (column, self.box.bottom + 4)], fill=INK, width=1
            )
            self.canvas.text(
                column - 1, self.box.bottom + 11, short(label), size=size, anchor="rm", angle=45
            )

    def frame(self) -> None:
        """The axes' outline, drawn last so bars and lines do not cover it."""
        self.canvas.rectangle(self.box, fill=None, outline=INK, width=1)

    def y_label(self, text: str, x: float, *, size: float = 13) -> None:
        """The axis title, turned upright, centred on the axes at column ``x``."""
        middle = (self.box.top + self.box.bottom) / 2
        self.canvas.text(x, middle, text, size=size, anchor="mm", angle=90)

    def x_label(self, text: str, y: float, *, size: float = 13) -> None:
        """The axis title under the axes at row ``y``."""
        self.canvas.text((self.box.left + self.box.right) / 2, y, text, size=size, anchor="mt")

    def message(self, text: str) -> None:
        """A note in the middle of empty axes ("no tickets yet")."""
        middle = (self.box.top + self.box.bottom) / 2
        centre = (self.box.left + self.box.right) / 2
        self.canvas.text(centre, middle, text, size=14, fill=MUTED)


def turned_label_depth(canvas: Canvas, labels: Sequence[str], size: float = 12) -> float:
    """How far labels turned 45 degrees (``Axes.x_ticks``) reach below the axes."""
    if not labels:
        return 0.0
    deepest = max(canvas.text_size(short(label), size)[0] for label in labels)
    _, height = canvas.text_size("Ag", size)
    return 11 + (deepest + height / 2) * math.sin(math.radians(45)) + 4
