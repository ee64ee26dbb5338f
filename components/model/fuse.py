"""The model's input picture and its coordinate frame: the one place boxes change frame.

AOI compares a board with its aligned defect-free template, so the model sees one
fused RGB picture: R = board under test, G = template, B = |test - template|
(computed at full resolution before resizing, so thin defects survive). With no
template (no-template mode) only R holds the board: G and B are empty, which no real
pair gives (a defect-free template against itself is R = G, B empty), so the model can
tell "no template" from "identical to its template".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageChops


def open_gray(image: str | Path | Image.Image) -> Image.Image:
    img = image if isinstance(image, Image.Image) else Image.open(image)
    return img.convert("L")


def fuse(test: str | Path | Image.Image, template: str | Path | Image.Image | None, size: int) -> Image.Image:
    """Fused size x size RGB input for one board (and its template, if given)."""
    t = open_gray(test)
    if template is None:
        g = d = Image.new("L", t.size, 0)
    else:
        g = open_gray(template)
        if g.size != t.size:
            raise ValueError(f"template is {g.size[0]}x{g.size[1]} but the board is {t.size[0]}x{t.size[1]}")
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
