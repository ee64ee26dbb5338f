"""Stage 1b: train the refiner on the spatial branch's own proposals (its failures included).

For every training board (and train.refine_views - 1 flipped/rotated copies) the trained spatial branch
proposes candidates down to a low score floor. A candidate matched one-to-one to a
defect (class-agnostic, IoU >= iou) learns that defect's class, whatever class the
head gave it, and its box; an unmatched one that overlaps no defect learns "none"; a
duplicate of a matched defect learns only the box it lies on (its crop looks like the
real one, so its class is left out; once both boxes agree, NMS keeps one). Each defect also
gives a few jittered boxes (shifted, resized) that learn only the box: the head's candidates
on long defects are short and off-centre, and the later passes see windows near the truth,
both rarer among the head's own proposals than they are at answer time. Crops are cut once and
reused every epoch with flips (which leave the topology features as they are), so training
takes seconds, not minutes.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou
from tqdm import tqdm

from components.config import TrainConfig
from components.model.refiner import Refiner, log_size, peak_probs, to_window
from components.model.regions import greedy_pairs
from components.model.spatial_head import decode
from components.model.topology import topology
from components.model.vlm import DefectVLM
from components.train.images import FusedSet, dihedral


@dataclass
class Jitter:
    """Box-only examples around each defect; the fields and their defaults are train.refine_jitter*."""
    copies: int
    shift: float
    min_scale: float
    max_scale: float

    @classmethod
    def from_config(cls, t: TrainConfig) -> Jitter:
        return cls(t.refine_jitter, t.refine_jitter_shift, t.refine_jitter_min_scale, t.refine_jitter_max_scale)


def jitter_boxes(gt: torch.Tensor, jitter: Jitter, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`jitter.copies` random boxes around each of the (M, 4) defects, and the defect each came from."""
    n = len(gt) * jitter.copies
    source = torch.arange(len(gt)).repeat_interleave(jitter.copies)
    size = (gt[source, 2:] - gt[source, :2])
    centre = (gt[source, :2] + gt[source, 2:]) / 2 + (torch.rand(n, 2, generator=g) * 2 - 1) * jitter.shift * size
    scale = jitter.min_scale + torch.rand(n, 2, generator=g) * (jitter.max_scale - jitter.min_scale)
    half = size * scale / 2
    return torch.cat([centre - half, centre + half], dim=1), source


@dataclass
class Examples:
    crops: torch.Tensor
    head_probs: torch.Tensor
    log_size: torch.Tensor
    labels: torch.Tensor
    """Class id, `none` (= K), or -1 for a duplicate (no class to learn)."""
    targets: torch.Tensor
    """The box to learn in window units (refiner.to_window); NaN where there is none."""
    topology: torch.Tensor
    """Per crop, its window's topology features (model/topology.py); (N, 0) for a refiner without."""


def labels_for(boxes: torch.Tensor, gt: torch.Tensor, gt_cls: torch.Tensor, none: int,
               iou_min: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per candidate: the class of the defect it is matched to (one-to-one, greedy by IoU),
    `none` when it overlaps no defect, -1 (left out) for a duplicate of a matched defect;
    and the index of the defect whose box it learns (the matched one, for a duplicate the
    one it overlaps most; -1 for none)."""
    labels = torch.full((len(boxes),), none, dtype=torch.long)
    target = torch.full((len(boxes),), -1, dtype=torch.long)
    if not len(boxes) or not len(gt):
        return labels, target
    iou = box_iou(boxes, gt)
    best, arg = iou.max(dim=1)
    near = best >= iou_min
    labels[near], target[near] = -1, arg[near]
    for c, g in greedy_pairs(iou, iou_min):
        labels[c], target[c] = gt_cls[g], g
    return labels, target


@torch.no_grad()
def collect(vlm: DefectVLM, refiner: Refiner, data: FusedSet, floor: float, top_k: int, iou_min: float,
            views: int, seed: int, batch: int = 16, jitter: Jitter | None = None) -> Examples:
    """Crops and labels of every proposal on `views` dihedral copies of each board, plus the
    jittered box-only examples around each defect."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    n_cls = len(vlm.meta.classes)
    parts: list[tuple] = []
    jobs = [(j, 0 if v == 0 else rng.randrange(1, 8)) for j in range(len(data)) for v in range(views)]
    for i in tqdm(range(0, len(jobs), batch), desc="refiner: proposals", unit="batch"):
        imgs, gts = [], []
        for j, k in jobs[i:i + batch]:
            img, bx = dihedral(data.images[j], data.boxes[j], k)
            imgs.append(img)
            gts.append((torch.from_numpy(bx), torch.from_numpy(data.labels[j])))
        imgs = np.stack(imgs)
        out = vlm.spatial(imgs)
        dets = decode(out, vlm.stride, floor, top_k)
        for b, (ds, (gt, gc)) in enumerate(zip(dets, gts, strict=True)):
            boxes = torch.tensor([d[2] for d in ds], dtype=torch.float32).reshape(-1, 4)
            labels, target = labels_for(boxes, gt, gc, n_cls, iou_min)
            if jitter and jitter.copies and len(gt):
                extra, source = jitter_boxes(gt, jitter, g)
                boxes, target = torch.cat([boxes, extra]), torch.cat([target, source])
                labels = torch.cat([labels, torch.full((len(extra),), -1, dtype=torch.long)])
            if not len(boxes):
                continue
            index = torch.full((len(boxes),), b)
            goal = torch.full((len(boxes), 4), float("nan"))
            windows = refiner.windows(boxes)
            if (has := target >= 0).any():
                goal[has] = to_window(gt[target[has]], windows[has])
            topo = (topology(out["pictures"], index, windows) if refiner.n_topology
                    else torch.zeros(len(boxes), 0))
            parts.append((refiner.crops(out["pictures"], index, windows).half(),
                          peak_probs(out["heat"], index, boxes, vlm.stride), log_size(boxes, vlm.stride), labels, goal,
                          topo))
    if not parts:  # an untrained head proposes nothing above the floor
        c = refiner.crop
        return Examples(torch.zeros(0, 3, c, c).half(), torch.zeros(0, n_cls), torch.zeros(0, 2),
                        torch.zeros(0, dtype=torch.long), torch.zeros(0, 4), torch.zeros(0, refiner.n_topology))
    return Examples(*(torch.cat([p[k] for p in parts]) for k in range(6)))


def _flip(crops: torch.Tensor, size: torch.Tensor, goal: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    # Defects have no orientation: random flips, and a transpose that swaps width and height.
    # The box target moves along (refiner.to_window: a flip negates an offset).
    k = int(torch.randint(8, (1,), generator=g))
    goal = goal.clone()
    if k & 1:
        crops, goal[:, 0] = crops.flip(3), -goal[:, 0]
    if k & 2:
        crops, goal[:, 1] = crops.flip(2), -goal[:, 1]
    if k & 4:
        crops, size, goal = crops.transpose(2, 3), size[:, [1, 0]], goal[:, [1, 0, 3, 2]]
    return crops, size, goal


def refine_loss(logits: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, goal: torch.Tensor,
                box_weight: float) -> torch.Tensor:
    """Cross-entropy on candidates with a class to learn + box_weight * smooth L1 on those with a box."""
    has_cls, has_box = labels >= 0, ~goal[:, 0].isnan()
    loss = F.cross_entropy(logits[has_cls], labels[has_cls]) if has_cls.any() else logits.sum() * 0
    if has_box.any():
        loss = loss + box_weight * F.smooth_l1_loss(t[has_box], goal[has_box], beta=0.05)
    return loss


def train_refiner(refiner: Refiner, ex: Examples, epochs: int, batch: int, lr: float, seed: int,
                  box_weight: float = 1.0) -> dict:
    """Class cross-entropy + box regression; returns counts, the last loss and the minutes spent."""
    start = time.time()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(refiner.parameters(), lr=lr, weight_decay=1e-4)
    n = len(ex.labels)
    steps = epochs * (n // batch)
    none = ex.head_probs.shape[1]
    figures = {"refine_examples": n, "refine_negatives": int((ex.labels == none).sum()),
               "refine_boxes": int((~ex.targets[:, 0].isnan()).sum()), "refine_steps": steps}
    if not steps:  # fewer examples than one batch: the refiner stays as initialised
        return {**figures, "refine_minutes": 0.0}
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    # Channels-last convolutions train ~12 % faster on CPU here (same arithmetic).
    refiner.to(memory_format=torch.channels_last).train()
    loss = torch.tensor(0.0)
    bar = tqdm(total=steps, desc="refiner: training", unit="step")
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n - batch + 1, batch):
            idx = order[i:i + batch]
            crops, size, goal = _flip(ex.crops[idx].float(), ex.log_size[idx], ex.targets[idx], g)
            logits, t = refiner.classify(crops.contiguous(memory_format=torch.channels_last), ex.head_probs[idx], size,
                                         ex.topology[idx])
            loss = refine_loss(logits, t, ex.labels[idx], goal, box_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    refiner.eval()
    return {**figures, "refine_final_loss": float(loss.detach()), "refine_minutes": (time.time() - start) / 60}
