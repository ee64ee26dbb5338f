"""What code measures on a wafer bin map: failing-die count and share, where the failing dies
are, and what shape they make. The wafer line's answers refer to these; the language model never
invents them.

Positions are read in the wafer's own frame: its centre is the centroid of its dies and a die's
radius is its distance from there over the farthest die's (0 centre, 1 rim). Thresholds are
module constants, named and explained where they are defined.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from components.data.wafer import FAIL, OUTSIDE

CENTRE_RADIUS = 0.35
"""Dies within this radius are the centre."""
EDGE_RADIUS = 0.75
"""Dies beyond this radius are the edge."""
ZONE_SHARE = 0.6
"""A zone (centre, edge, a quadrant) holds the failing dies when at least this share of them lies there."""
ANGLE_BINS = 12
RING_COVER = 0.75
"""Failing edge dies in at least this share of the 12 angle sectors go all round: a ring."""
EVERYWHERE_SHARE = 0.5
"""Above this share of the wafer failing, the failing dies are everywhere (near-full above NEAR_FULL)."""
NEAR_FULL = 0.8
LINE_ELONGATION = 8.0
"""A failing piece whose long axis is this many times its short one (PCA) is a line (a scratch)."""
LINE_MIN_DIES = 8
"""A connected line of failing dies shorter than this is not read as a scratch."""
LOCATIONS = ("none", "centre", "edge", "ring", "top-left", "top-right", "bottom-left", "bottom-right", "everywhere")
DENSITY_WINDOW = 0.12
DENSITY_FACTOR = 2.0
DENSITY_MIN = 0.5
"""pattern_dies: the window (share of the wafer's diameter), and how much denser than the wafer as
a whole (and at least how dense) the failures around a die must be for it to be part of a pattern."""
PATTERN_MIN_DIES = 5
"""Fewer pattern dies than this: no pattern, the failures are scattered."""
MORPHOLOGIES = ("none", "cluster", "line", "ring", "scattered", "near-full")


@dataclasses.dataclass(frozen=True)
class Measured:
    dies: int
    failing: int
    share: float
    location: str
    """One of LOCATIONS."""
    morphology: str
    """One of MORPHOLOGIES."""


def _polar(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Per die: its radius (0-1) and angle (radians, 0 = right, counter-clockwise as drawn); the
    wafer's centre (row, col)."""
    wafer = grid > OUTSIDE
    ys, xs = np.nonzero(wafer)
    cy, cx = ys.mean(), xs.mean()
    r = np.hypot(ys - cy, xs - cx)
    radius, angle = np.zeros(grid.shape), np.zeros(grid.shape)
    radius[wafer] = r / max(float(r.max()), 1e-9)
    angle[wafer] = np.arctan2(-(ys - cy), xs - cx)
    return radius, angle, (cy, cx)


def _covers(angles: np.ndarray) -> float:
    """Share of the ANGLE_BINS sectors holding at least one of these angles."""
    bins = ((angles + np.pi) / (2 * np.pi) * ANGLE_BINS).astype(int) % ANGLE_BINS
    return len(set(bins.tolist())) / ANGLE_BINS


def pattern_dies(grid: np.ndarray) -> np.ndarray:
    """The failing dies that make a pattern: those where the local failure rate (over a window
    DENSITY_WINDOW of the wafer's diameter) is at least DENSITY_FACTOR times the wafer's and at
    least DENSITY_MIN. Real maps carry random failing dies everywhere; these are left out."""
    wafer, fail = grid > OUTSIDE, grid == FAIL
    size = max(3, int(round(DENSITY_WINDOW * max(grid.shape))))
    dies = ndimage.uniform_filter(wafer.astype(float), size, mode="constant")
    local = ndimage.uniform_filter(fail.astype(float), size, mode="constant") / np.maximum(dies, 1e-9)
    rate = fail.sum() / max(1, wafer.sum())
    return fail & (local >= max(DENSITY_FACTOR * rate, DENSITY_MIN))


def _elongated(ys: np.ndarray, xs: np.ndarray) -> bool:
    if len(ys) < 3:
        return False
    spread = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float)))
    return bool(spread[0] <= 1e-9 or spread[1] / spread[0] >= LINE_ELONGATION ** 2)


def _line_piece(grid: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected piece of failing dies when it is a line of at least LINE_MIN_DIES."""
    labels, _ = ndimage.label(grid == FAIL, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    if sizes.max() < LINE_MIN_DIES:
        return None
    piece = labels == int(np.argmax(sizes))
    return piece if _elongated(*np.nonzero(piece)) else None


def _rim(grid: np.ndarray, cy: float, cx: float) -> float:
    ys, xs = np.nonzero(grid > OUTSIDE)
    return float(np.hypot(ys - cy, xs - cx).max())


def _shape(grid: np.ndarray) -> tuple[str, str]:
    """(location, morphology): see LOCATIONS and MORPHOLOGIES."""
    wafer, fail = grid > OUTSIDE, grid == FAIL
    n = int(fail.sum())
    if not n:
        return "none", "none"
    share = n / wafer.sum()
    if share > NEAR_FULL:
        return "everywhere", "near-full"
    line = _line_piece(grid)  # a thin scratch is too sparse for pattern_dies' window
    main = line if line is not None else pattern_dies(grid)
    if share > EVERYWHERE_SHARE or main.sum() < PATTERN_MIN_DIES:
        return "everywhere", "scattered"
    radius, angle, (cy, cx) = _polar(grid)
    r, a = radius[main], angle[main]
    if line is None and _covers(a) >= RING_COVER and np.median(r) > CENTRE_RADIUS:
        return "ring", "ring"
    ys, xs = np.nonzero(main)
    form = "line" if line is not None or _elongated(ys, xs) else "cluster"
    if (r >= EDGE_RADIUS).mean() >= ZONE_SHARE:
        return "edge", form
    if np.hypot(ys.mean() - cy, xs.mean() - cx) <= CENTRE_RADIUS * _rim(grid, cy, cx):
        return "centre", form
    return f"{'top' if ys.mean() < cy else 'bottom'}-{'left' if xs.mean() < cx else 'right'}", form


def location(grid: np.ndarray) -> str:
    """Where the failing dies' pattern is (LOCATIONS)."""
    return _shape(grid)[0]


def morphology(grid: np.ndarray) -> str:
    """What shape the failing dies make (MORPHOLOGIES)."""
    return _shape(grid)[1]


def measure(grid: np.ndarray) -> Measured:
    """Every measured fact of one map; ValueError when it has no die."""
    dies = int((grid > OUTSIDE).sum())
    if not dies:
        raise ValueError("a wafer map with no die cannot be measured")
    failing = int((grid == FAIL).sum())
    return Measured(dies, failing, failing / dies, *_shape(grid))
