"""The model's input picture and its coordinate frame: the one place boxes change frame.

AOI compares a board with its aligned defect-free template, so the model sees one
fused RGB picture: R = board under test, G = template, B = |test - template|
(computed at full resolution before resizing, so thin defects survive). With no
template (no-template mode) only R holds the board: G and B are empty, which no real
pair gives (a defect-free template against itself is R = G, B empty), so the model can
tell "no template" from "identical to its template".

Before the difference is taken, the board's grey levels are matched to its template's
(`match_levels`): a board photographed under other lighting would otherwise differ from
its template everywhere, and B would light up the whole picture.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageChops


def open_gray(image: str | Path | Image.Image) -> Image.Image:
    img = image if isinstance(image, Image.Image) else Image.open(image)
    return img.convert("L")


# Percentiles whose grey levels are matched: low and high enough to ignore a defect's few
# pixels (well under 1 % of a board), so a clean pair of the same lighting maps exactly onto itself.
LEVEL_PERCENTILES = (1.0, 99.0)


def _levels(img: Image.Image) -> tuple[int, ...]:
    """The grey levels at LEVEL_PERCENTILES, read off PIL's histogram (a 256-bin C count: a
    fraction of a sort-based percentile's cost on the answer path)."""
    cum = np.cumsum(img.histogram())
    return tuple(int(np.searchsorted(cum, cum[-1] * p / 100)) for p in LEVEL_PERCENTILES)


def match_levels(board: Image.Image, template: Image.Image) -> Image.Image:
    """The board with a gain and offset that put its dark and bright levels (LEVEL_PERCENTILES)
    where the template has them: lighting changes between the two scans cancel out."""
    (b_lo, b_hi), (g_lo, g_hi) = _levels(board), _levels(template)
    if b_hi - b_lo < 1 or (b_lo, b_hi) == (g_lo, g_hi):
        return board  # a flat picture has no levels to match; matched ones need nothing
    gain = (g_hi - g_lo) / (b_hi - b_lo)
    return board.point([min(max(round((v - b_lo) * gain + g_lo), 0), 255) for v in range(256)])


def fuse(test: str | Path | Image.Image, template: str | Path | Image.Image | None, size: int) -> Image.Image:
    """Fused size x size RGB input for one board (and its template, if given)."""
    t = open_gray(test)
    if template is None:
        g = d = Image.new("L", t.size, 0)
    else:
        g = open_gray(template)
        if g.size != t.size:
            raise ValueError(f"template is {g.size[0]}x{g.size[1]} but the board is {t.size[0]}x{t.size[1]}")
        t = match_levels(t, g)
        d = ImageChops.difference(t, g)
    chans = [c.resize((size, size), Image.Resampling.BILINEAR) for c in (t, g, d)]
    return Image.merge("RGB", chans)


class Frame:
    """Maps boxes between original pixels and the model's size x size input."""

    def __init__(self, width: int, height: int, size: int):
        self.sx, self.sy = width / size, height / size
        self.width, self.height = width, height

    def to_model(self, box: tuple[float, float, float, float]) -> np.ndarray:
        x1, y1, x2, y2 = box
        return np.array([x1 / self.sx, y1 / self.sy, x2 / self.sx, y2 / self.sy], dtype=np.float32)

    def to_original(self, box) -> tuple[int, int, int, int]:
        """Model-frame box to integer original pixels, clipped to the image and never empty."""
        x1 = int(round(min(max(box[0] * self.sx, 0), self.width - 2)))
        y1 = int(round(min(max(box[1] * self.sy, 0), self.height - 2)))
        x2 = int(round(min(max(box[2] * self.sx, x1 + 1), self.width - 1)))
        y2 = int(round(min(max(box[3] * self.sy, y1 + 1), self.height - 1)))
        return (x1, y1, x2, y2)


def image_size(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size
