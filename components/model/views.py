"""Test-time views: the 8 flips/rotations training shows a picture or a crop in
(train/images.dihedral, train/refine._flip), and how to bring what the model says about view k
back to the original frame, so views can be averaged."""
from __future__ import annotations

import torch


def dihedral_maps(x: torch.Tensor, k: int) -> torch.Tensor:
    """View k of (B, C, H, W) square maps, as train/images.dihedral makes them: horizontal flip
    (k & 1), then vertical flip (k & 2), then transpose (k & 4)."""
    if k & 1:
        x = x.flip(3)
    if k & 2:
        x = x.flip(2)
    return x.transpose(2, 3) if k & 4 else x


def undo_dihedral(maps: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """The spatial head's maps of view k back in the picture's frame: the steps undone in reverse
    order; a transpose swaps the x / y channels of offset and size, a flip mirrors its axis'
    offset (sigmoid(-z) = 1 - sigmoid(z): the peak's sub-cell position mirrored)."""
    heat, off, size = maps["heat"], maps["offset"], maps["size"]
    if k & 4:
        heat, off, size = heat.transpose(2, 3), off.transpose(2, 3)[:, [1, 0]], size.transpose(2, 3)[:, [1, 0]]
    if k & 2:
        heat, off, size = heat.flip(2), off.flip(2) * torch.tensor([1.0, -1.0])[:, None, None], size.flip(2)
    if k & 1:
        heat, off, size = heat.flip(3), off.flip(3) * torch.tensor([-1.0, 1.0])[:, None, None], size.flip(3)
    return {"heat": heat, "offset": off, "size": size}


def undo_window(t: torch.Tensor, k: int) -> torch.Tensor:
    """A refiner box (N, 4: centre offset x, y, log size x, y, in window units; refiner.to_window)
    said on view k of its crop, back in the crop's frame: a transpose swapped x and y, a flip
    negated its axis' offset."""
    if k & 4:
        t = t[:, [1, 0, 3, 2]]
    sign = torch.tensor([-1.0 if k & 1 else 1.0, -1.0 if k & 2 else 1.0, 1.0, 1.0])
    return t * sign
