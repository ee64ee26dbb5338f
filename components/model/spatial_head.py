"""The spatial branch: a CenterNet-style head on the vision encoder's patch grid.

For each patch cell it predicts one heatmap per class (is a defect centre here?),
a sub-cell offset of that centre, and the box size. Coordinates therefore come
from the vision features, never from text tokens; the language model only
refers to the candidates this head proposes (see components/qa/grammar.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SpatialHead(nn.Module):
    def __init__(self, in_dim: int, n_classes: int, channels: int = 128):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_dim, channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
        )
        self.heat = nn.Conv2d(channels, n_classes, 1)
        self.offset = nn.Conv2d(channels, 2, 1)
        self.size = nn.Conv2d(channels, 2, 1)
        # Start heatmaps at p~0.01 so the focal loss is not swamped by easy negatives.
        nn.init.constant_(self.heat.bias, -math.log(99.0))

    def forward(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        """grid: (B, C, H, W) patch features -> heat logits (B,K,H,W), offset and log-size (B,2,H,W)."""
        x = self.trunk(grid)
        return {"heat": self.heat(x), "offset": self.offset(x), "size": self.size(x)}


def _gaussian(h: int, w: int, cx: float, cy: float, sigma: float, device) -> torch.Tensor:
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[None, :]
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def build_targets(boxes: list[torch.Tensor], labels: list[torch.Tensor], n_classes: int,
                  grid_hw: tuple[int, int], stride: float, device="cpu") -> dict[str, torch.Tensor]:
    """Targets for a batch; boxes are (N,4) in model-input pixels, labels (N,) class ids.

    Centre c = box centre / stride in cell units; the peak sits in cell floor(c) and the
    offset target is c - floor(c). The Gaussian's sigma grows with box size (a third of
    the half-diagonal, at least half a cell) so big defects tolerate a nearby peak.
    """
    h, w = grid_hw
    b = len(boxes)
    heat = torch.zeros(b, n_classes, h, w, device=device)
    mask = torch.zeros(b, h, w, device=device)
    offset = torch.zeros(b, 2, h, w, device=device)
    size = torch.zeros(b, 2, h, w, device=device)
    for i, (bx, lb) in enumerate(zip(boxes, labels, strict=True)):
        for (x1, y1, x2, y2), k in zip(bx.tolist(), lb.tolist(), strict=True):
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            px, py = min(int(cx), w - 1), min(int(cy), h - 1)
            bw, bh = max(x2 - x1, 1.0) / stride, max(y2 - y1, 1.0) / stride
            sigma = max(0.5, math.hypot(bw, bh) / 6)
            heat[i, k] = torch.maximum(heat[i, k], _gaussian(h, w, px, py, sigma, device))
            heat[i, k, py, px] = 1.0
            mask[i, py, px] = 1.0
            offset[i, :, py, px] = torch.tensor([cx - px, cy - py])
            size[i, :, py, px] = torch.tensor([math.log(bw), math.log(bh)])
    return {"heat": heat, "mask": mask, "offset": offset, "size": size}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of centres."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = -torch.log(1 - p) * p**alpha * (1 - target) ** beta * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def head_loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor], size_weight: float = 0.5) -> dict[str, torch.Tensor]:
    """Focal heatmap loss + L1 on offset and log-size at centre cells."""
    m = tgt["mask"].unsqueeze(1)
    n = m.sum().clamp(min=1.0)
    heat = focal_loss(out["heat"], tgt["heat"])
    off = (F.l1_loss(torch.sigmoid(out["offset"].float()), tgt["offset"], reduction="none") * m).sum() / n
    size = (F.l1_loss(out["size"].float(), tgt["size"], reduction="none") * m).sum() / n
    return {"loss": heat + off + size_weight * size, "heat": heat, "offset": off, "size": size}


@torch.no_grad()
def decode(out: dict[str, torch.Tensor], stride: float, floor: float,
           top_k: int) -> list[list[tuple[int, float, tuple[float, float, float, float]]]]:
    """Peaks of the best-class map -> per image [(class id, score, box in model pixels)].

    A cell keeps only its best class (one defect per place), then a 3x3 max-pool keeps
    local maxima, so neighbouring cells of one defect do not report it twice.
    """
    heat = torch.sigmoid(out["heat"].float())
    score, cls = heat.max(dim=1)
    peaks = score == F.max_pool2d(score[:, None], 3, stride=1, padding=1)[:, 0]
    score = score * peaks
    off = torch.sigmoid(out["offset"].float())
    wh = torch.exp(out["size"].float()) * stride
    b, h, w = score.shape
    results = []
    for i in range(b):
        vals, idx = score[i].flatten().topk(min(top_k, h * w))
        dets = []
        for v, j in zip(vals.tolist(), idx.tolist(), strict=True):
            if v < floor:
                break
            py, px = divmod(j, w)
            cx = (px + off[i, 0, py, px].item()) * stride
            cy = (py + off[i, 1, py, px].item()) * stride
            bw, bh = wh[i, 0, py, px].item(), wh[i, 1, py, px].item()
            dets.append((int(cls[i, py, px]), v, (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)))
        results.append(dets)
    return results
