"""Failure-aware refinement: a second stage that re-checks each spatial-branch candidate.

The spatial head sees the board on a 16-px patch grid; what it gets wrong on new
boards is mostly the class of a defect it did find (mousebite vs open, spur vs short:
whether a trace is nibbled or cut, whether a protrusion reaches the next trace) and a
few places that are not defects at all. The refiner looks again at each candidate at
the input's full resolution: a crop of the fused picture (board, template, difference)
around the candidate, sized to the candidate's box, plus the head's own class
probabilities at the peak. It outputs one of the classes or "none", and a corrected box:
the head places centres on a 16-px grid and sizes long defects poorly, the crop sees
them at 1-3 px. Candidates that end up on the same defect are then merged (class-
agnostic NMS), so one long defect is not reported twice; and two same-class boxes that
touch end to end become one (a long open proposed from two peaks, whose corrected halves
abut but overlap too little for NMS).

It is trained on the first stage's own proposals on the training boards (components/
train/refine.py): proposals that match a defect learn that defect's class (right or
wrong in the head) and its box, the others learn "none".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms, roi_align

from components.model.topology import FEATURES as TOPOLOGY, topology
from components.model.views import dihedral_maps, undo_window


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Refiner(nn.Module):
    """Crop CNN + head evidence -> logits over the classes and a last "none" column, and a box."""

    def __init__(self, n_classes: int, crop: int = 32, width: int = 32, context: float = 2.0,
                 min_side: float = 24.0, max_side: float = 160.0, topology: bool = False):
        super().__init__()
        self.crop, self.context, self.min_side, self.max_side = crop, context, min_side, max_side
        # With `topology`, the class also reads what the candidate does to the board's
        # connectivity against its template (components/model/topology.py).
        self.n_topology = len(TOPOLOGY) if topology else 0
        self.trunk = nn.Sequential(_block(3, width, 1), _block(width, 2 * width, 2), _block(2 * width, 2 * width, 1),
                                   _block(2 * width, 4 * width, 2), _block(4 * width, 4 * width, 1))
        # + head class probabilities at the peak cell, the box's log width/height (+ topology).
        n_in = 4 * width + n_classes + 2 + self.n_topology
        self.fc = nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, n_classes + 1))
        # The box needs where things are in the crop, which an average over it loses: a
        # 4x4 grid of pooled features keeps the layout (4 x 4 x 4w inputs).
        self.layout = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self._fast: list[nn.Module] = []  # a list, so the fused copy stays out of the state dict
        self.box = nn.Sequential(nn.Linear(16 * 4 * width + 2, 128), nn.ReLU(), nn.Linear(128, 4))

    def train(self, mode: bool = True) -> Refiner:
        """Also (re)builds the answer-time trunk: each conv + batch norm + ReLU fused into one
        op, channels-last, ~40 % faster on CPU, same outputs to ~1e-5. Built on eval(), after
        the weights are in; dropped when training starts."""
        super().train(mode)
        self._fast.clear()
        if not mode:
            fused = torch.ao.quantization.fuse_modules(self.trunk,
                                                       [[f"{i}.0", f"{i}.1", f"{i}.2"] for i in range(len(self.trunk))],
                                                       inplace=False)
            self._fast.append(fused.to(memory_format=torch.channels_last))
        return self

    def load_state_dict(self, *args, **kwargs):
        result = super().load_state_dict(*args, **kwargs)
        self.train(self.training)  # new weights: rebuild the fused trunk if it exists
        return result

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """Trunk feature maps (N, 4w, crop/4, crop/4); the fused trunk when answering."""
        if self._fast and not torch.is_grad_enabled():
            return self._fast[0](crops.contiguous(memory_format=torch.channels_last))
        return self.trunk(crops)

    def windows(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N, 4) candidate boxes (model pixels) -> crop windows around their centres.

        The window is `context` times the box's longer side (clamped), so a short can be
        seen reaching the neighbouring trace and a tiny pin-hole is not lost in copper.
        """
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1).mul(self.context).clamp(self.min_side, self.max_side)
        return torch.cat([c - side[:, None] / 2, c + side[:, None] / 2], dim=1)

    def crops(self, images: torch.Tensor, index: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) normalised; index (N,) image of each candidate; its window (N, 4,
        model pixels, see `windows`) -> (N, 3, crop, crop) crops, resampled to one size."""
        rois = torch.cat([index[:, None].float(), windows], dim=1)
        return roi_align(images, rois, output_size=self.crop, spatial_scale=1.0, sampling_ratio=2, aligned=True)

    def classify(self, crops: torch.Tensor, head_probs: torch.Tensor, log_size: torch.Tensor,
                 topo: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops, head class probabilities (N, K), log box size in cells (N, 2) and, with
        topology, its features (N, len(TOPOLOGY)) -> class logits (N, K + 1) and the box in
        window units (N, 4), see `to_window`."""
        f = self.features(crops)
        evidence = [f.mean(dim=(2, 3)), head_probs, log_size] + ([topo] if self.n_topology else [])
        logits = self.fc(torch.cat(evidence, dim=1))
        return logits, self.box(torch.cat([self.layout(f), log_size], dim=1))

    def forward(self, images: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor, head_probs: torch.Tensor,
                stride: float, views: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (N, K + 1; the last column is "none") and corrected boxes (N, 4, model pixels).

        views > 1: each crop is also classified flipped / rotated (the first `views` of the 8
        training views, one batch); the class is the mean probability over them (returned as its
        log: softmax gives it back) and the box the mean of each view's box in the crop's frame."""
        windows = self.windows(boxes)
        topo = topology(images, index, windows) if self.n_topology else None
        crops, size = self.crops(images, index, windows), log_size(boxes, stride)
        if views == 1:
            logits, t = self.classify(crops, head_probs, size, topo)
            return logits, from_window(t, windows)
        n, ks = len(boxes), range(views)
        logits, t = self.classify(torch.cat([dihedral_maps(crops, k) for k in ks]), head_probs.repeat(views, 1),
                                  torch.cat([size[:, [1, 0]] if k & 4 else size for k in ks]),
                                  None if topo is None else topo.repeat(views, 1))
        probs = torch.stack([F.softmax(logits[k * n:(k + 1) * n], -1) for k in ks]).mean(0)
        t = torch.stack([undo_window(t[k * n:(k + 1) * n], k) for k in ks]).mean(0)
        return probs.log(), from_window(t, windows)


def to_window(boxes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Boxes -> (centre offset from the window's centre / side, log(size / side)), x then y.

    In these units a flip of the crop negates an offset and a transpose swaps x and y,
    so the training flips move the target exactly.
    """
    side = (windows[:, 2:] - windows[:, :2])
    offset = ((boxes[:, :2] + boxes[:, 2:]) - (windows[:, :2] + windows[:, 2:])) / 2 / side
    return torch.cat([offset, ((boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3) / side).log()], dim=1)


def from_window(t: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_window`."""
    side = (windows[:, 2:] - windows[:, :2])
    c = (windows[:, :2] + windows[:, 2:]) / 2 + t[:, :2] * side
    half = t[:, 2:].clamp(max=2.0).exp() * side / 2
    return torch.cat([c - half, c + half], dim=1)


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
def recheck(refiner: Refiner, out: dict[str, torch.Tensor], dets: list[list[tuple]], stride: float,
            floor: float, nms_iou: float = 1.0, passes: int = 1, merge_gap: float | None = None,
            merge_overlap: float | None = None, views: int = 1) -> list[list[tuple]]:
    """Re-check decoded candidates [(class id, score, box)] per image of `out` (vlm.spatial's:
    head maps and the normalised pictures): each takes the refiner's
    class, score = P(that class) and corrected box; those below `floor` are dropped, then of
    candidates overlapping by IoU > nms_iou only the surest stays.

    With passes > 1 the survivors are re-checked on windows around their corrected boxes: a
    crop centred on the defect sees all of it, so the box and the class both improve.
    Last, with merge_gap set, same-class boxes that touch end to end are joined (`merge_touching`;
    merge_overlap is then required, as the model's meta stores both). views: of each crop
    (Refiner.forward).
    """
    for _ in range(passes):
        dets = _recheck_once(refiner, out, dets, stride, floor, nms_iou, views)
    return dets if merge_gap is None else [merge_touching(ds, merge_gap, merge_overlap) for ds in dets]


def _recheck_once(refiner: Refiner, out: dict[str, torch.Tensor], dets: list[list[tuple]],
                  stride: float, floor: float, nms_iou: float, views: int = 1) -> list[list[tuple]]:
    flat = [(i, d) for i, ds in enumerate(dets) for d in ds]
    if not flat:
        return [[] for _ in dets]
    index = torch.tensor([i for i, _ in flat])
    boxes = torch.tensor([d[2] for _, d in flat], dtype=torch.float32)
    logits, fixed = refiner(out["pictures"], index, boxes, peak_probs(out["heat"], index, boxes, stride), stride, views)
    score, cls = F.softmax(logits, -1)[:, :-1].max(dim=1)
    result: list[list[tuple]] = []
    for i in range(len(dets)):
        mine = ((index == i) & (score >= floor)).nonzero().flatten()
        keep = mine[nms(fixed[mine], score[mine], nms_iou)] if nms_iou < 1.0 else mine
        result.append([(int(cls[k]), float(score[k]), tuple(fixed[k].tolist())) for k in keep.tolist()])
    return result


def merge_touching(dets: list[tuple], gap: float, overlap: float) -> list[tuple]:
    """[(class id, score, box)] -> the same with each set of same-class boxes that touch end to
    end replaced by their union (the surer score).

    Two boxes touch end to end when they are at most `gap` pixels apart, at least one of
    them is long in the direction they follow one another in, and across it they overlap by
    at least `overlap` of the narrower one: the halves of one long trace defect, not two
    thin defects side by side or two apart.
    """
    dets = list(dets)
    for a in range(len(dets)):
        for b in range(a + 1, len(dets)):
            if dets[a][0] == dets[b][0] and _touch(dets[a][2], dets[b][2], gap, overlap):
                (k, sa, ba), (_, sb, bb) = dets[a], dets[b]
                union = (min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3]))
                rest = [d for i, d in enumerate(dets) if i not in (a, b)]
                return merge_touching(rest + [(k, max(sa, sb), union)], gap, overlap)  # the union may touch more
    return dets


def _touch(a: tuple, b: tuple, gap: float, overlap: float) -> bool:
    # Per axis: the overlap of the two extents (negative: the gap between them) and the narrower extent.
    lap = [min(a[i + 2], b[i + 2]) - max(a[i], b[i]) for i in (0, 1)]
    narrow = [min(a[i + 2] - a[i], b[i + 2] - b[i]) for i in (0, 1)]
    if min(lap) < -gap:
        return False
    # They follow one another along axis i if they line up across it (axis 1 - i) and at least
    # one of them is long along i: two thin parallel boxes stacked across are two defects.
    return any(lap[1 - i] >= overlap * narrow[1 - i] and any(_long_along(box, i) for box in (a, b)) for i in (0, 1))


def _long_along(box: tuple, axis: int) -> bool:
    return box[axis + 2] - box[axis] >= box[3 - axis] - box[1 - axis]
