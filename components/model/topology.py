"""What a candidate does to the board's connectivity, counted by code against its template.

The classes of a PCB defect differ in topology more than in looks: an open cuts a trace in
two (one more copper piece), a short joins two (one fewer), a pin-hole punches a hole (one
more piece of bare board), spurious copper lands as an island, while a mouse bite or a spur
only nibbles or bulges an edge (no count changes). The refiner's small crop CNN learns looks
from the training groups and, on boards of other groups, confuses exactly these pairs (open
vs mouse bite, short vs spur). So for each refiner window the code counts the connected
bright and dark pieces of the board and of its template, at full input resolution, and the
refiner reads the differences beside its crop (components/model/refiner.py).

Counts do not change under flips or transposes, so the refiner's training flips leave them as
they are. A picture fused with no template (`fuse`: G channel empty) has nothing to compare
with: its features are all zero, the first one included ("has a reference").
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

FEATURES = ("has_reference", "d_bright_pieces", "d_dark_pieces", "bright_added", "dark_added")
"""One row per window, in this order: 1 when the picture has a template; the change in the
number of bright and of dark connected pieces, board minus template (clipped to +-MAX_DELTA);
the square root of the share of the window that is bright on the board and dark on the
template, and the reverse."""
MIN_PIECE = 3
"""Pieces of fewer pixels are not counted: single-pixel specks of scanning noise or of the
bilinear resize would otherwise change the counts of a clean window."""
MAX_DELTA = 3
_EIGHT = np.ones((3, 3), dtype=bool)  # bright pieces 8-connected, dark ones 4-connected: the usual pair


def _pieces(mask: np.ndarray, structure: np.ndarray | None) -> int:
    labels, n = ndimage.label(mask, structure=structure)
    return int((np.bincount(labels.ravel(), minlength=n + 1)[1:] >= MIN_PIECE).sum()) if n else 0


def _row(board: np.ndarray, template: np.ndarray) -> list[float]:
    if not board.size:
        return [1.0, 0.0, 0.0, 0.0, 0.0]
    bright = _pieces(board, _EIGHT) - _pieces(template, _EIGHT)
    dark = _pieces(~board, None) - _pieces(~template, None)
    added = (board & ~template).mean()
    removed = (~board & template).mean()
    return [1.0, float(np.clip(bright, -MAX_DELTA, MAX_DELTA)), float(np.clip(dark, -MAX_DELTA, MAX_DELTA)),
            float(np.sqrt(added)), float(np.sqrt(removed))]


def topology(pictures: torch.Tensor, index: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """pictures (B, 3, H, W): normalised fused pictures (R board, G template; [-1, 1]); index (N,)
    the picture of each window; windows (N, 4) in model pixels -> (N, len(FEATURES)) float."""
    out = torch.zeros(len(index), len(FEATURES))
    if not len(index):
        return out
    bright = (pictures[:, :2] > 0).numpy()  # mid-grey splits copper from bare board
    has_reference = (pictures[:, 1] > -1 + 1e-3).flatten(1).any(dim=1).tolist()
    h, w = bright.shape[-2:]
    for n, (i, box) in enumerate(zip(index.tolist(), windows.tolist(), strict=True)):
        if not has_reference[i]:
            continue
        x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
        x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        out[n] = torch.tensor(_row(bright[i, 0, y1:y2, x1:x2], bright[i, 1, y1:y2, x1:x2]))
    return out
