"""Failure-aware refinement: a second stage that re-checks each spatial-branch candidate.

The spatial head sees the board on a 16-px patch grid; what it gets wrong on new
boards is mostly the class of a defect it did find (mousebite vs open, spur vs short:
whether a trace is nibbled or cut, whether a protrusion reaches the next trace) and a
few places that are not defects at all. The refiner looks again at each candidate at
the input's full resolution: a crop of the fused picture (board, template, difference)
around the candidate, sized to the candidate's box, plus the head's own class
probabilities at the peak. It outputs one of the classes or "none". It never moves a
box: coordinates stay those of the spatial branch.

It is trained on the first stage's own proposals on the training boards (components/
train/refine.py): proposals that match a defect learn that defect's class (right or
wrong in the head), the others learn "none".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from components.model.vlm import normalise


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Refiner(nn.Module):
    """Crop CNN + head evidence -> logits over the classes and a last "none" column."""

    def __init__(self, n_classes: int, crop: int = 32, width: int = 32, context: float = 2.0,
                 min_side: float = 24.0, max_side: float = 96.0):
        super().__init__()
        self.crop, self.context, self.min_side, self.max_side = crop, context, min_side, max_side
        self.cnn = nn.Sequential(_block(3, width, 1), _block(width, 2 * width, 2), _block(2 * width, 2 * width, 1),
                                 _block(2 * width, 4 * width, 2), _block(4 * width, 4 * width, 1),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        # + head class probabilities at the peak cell and the box's log width/height.
        self.fc = nn.Sequential(nn.Linear(4 * width + n_classes + 2, 128), nn.ReLU(), nn.Linear(128, n_classes + 1))

    def windows(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N, 4) candidate boxes (model pixels) -> crop windows around their centres.

        The window is `context` times the box's longer side (clamped), so a short can be
        seen reaching the neighbouring trace and a tiny pin-hole is not lost in copper.
        """
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1).mul(self.context).clamp(self.min_side, self.max_side)
        return torch.cat([c - side[:, None] / 2, c + side[:, None] / 2], dim=1)

    def crops(self, images: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) normalised; index (N,) image of each candidate; boxes (N, 4)
        model pixels -> (N, 3, crop, crop) windows, resampled to one size."""
        rois = torch.cat([index[:, None].float(), self.windows(boxes)], dim=1)
        return roi_align(images, rois, output_size=self.crop, spatial_scale=1.0, sampling_ratio=2, aligned=True)

    def classify(self, crops: torch.Tensor, head_probs: torch.Tensor, log_size: torch.Tensor) -> torch.Tensor:
        """Crops, head class probabilities (N, K), log box size in cells (N, 2) -> logits (N, K + 1)."""
        return self.fc(torch.cat([self.cnn(crops), head_probs, log_size], dim=1))

    def forward(self, images: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor, head_probs: torch.Tensor,
                stride: float) -> torch.Tensor:
        """Logits (N, K + 1) for candidates `boxes` of `images`; the last column is "none"."""
        return self.classify(self.crops(images, index, boxes), head_probs, log_size(boxes, stride))


def candidate_limit(max_regions: int) -> int:
    """Head candidates per picture the refiner re-checks: twice what may reach the language
    model, since it drops some (the survivors are cut back to max_regions)."""
    return 2 * max_regions


def log_size(boxes: torch.Tensor, stride: float) -> torch.Tensor:
    """Log width and height of (N, 4) boxes in grid cells."""
    return ((boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0) / stride).log()


def peak_probs(heat_logits: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor, stride: float) -> torch.Tensor:
    """Head class probabilities (N, K) at the cell holding each box centre (its peak cell)."""
    _, _, h, w = heat_logits.shape
    c = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
    px = c[:, 0].floor().long().clamp(0, w - 1)
    py = c[:, 1].floor().long().clamp(0, h - 1)
    return torch.sigmoid(heat_logits.float()[index, :, py, px])


@torch.no_grad()
def recheck(refiner: Refiner, images_uint8, out: dict[str, torch.Tensor], dets: list[list[tuple]], stride: float,
            floor: float) -> list[list[tuple]]:
    """Re-check decoded candidates [(class id, score, box)] per image: each takes the refiner's
    class and score = P(that class); those below `floor` are dropped."""
    flat = [(i, d) for i, ds in enumerate(dets) for d in ds]
    if not flat:
        return [[] for _ in dets]
    index = torch.tensor([i for i, _ in flat])
    boxes = torch.tensor([d[2] for _, d in flat], dtype=torch.float32)
    probs = F.softmax(refiner(normalise(images_uint8), index, boxes, peak_probs(out["heat"], index, boxes, stride), stride), -1)
    score, cls = probs[:, :-1].max(dim=1)
    result: list[list[tuple]] = [[] for _ in dets]
    for (i, d), k, s in zip(flat, cls.tolist(), score.tolist()):
        if s >= floor:
            result[i].append((k, s, d[2]))
    return result
