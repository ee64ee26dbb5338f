"""Stage 1b: train the refiner on the spatial branch's own proposals (its failures included).

For every training board (and train.refine_views - 1 flipped/rotated copies) the trained spatial branch
proposes candidates down to a low score floor. A candidate matched one-to-one to a
defect (class-agnostic, IoU >= iou) learns that defect's class, whatever class the
head gave it; an unmatched one that overlaps no defect learns "none"; a duplicate of a
matched defect is left out (its crop looks like the real one). Crops are cut once and
reused every epoch with flips, so training takes seconds, not minutes.
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

from components.model.refiner import Refiner, log_size, peak_probs
from components.model.regions import greedy_pairs
from components.model.spatial_head import decode
from components.model.vlm import DefectVLM, normalise
from components.train.images import FusedSet, dihedral


@dataclass
class Examples:
    crops: torch.Tensor
    head_probs: torch.Tensor
    log_size: torch.Tensor
    labels: torch.Tensor


def labels_for(boxes: torch.Tensor, gt: torch.Tensor, gt_cls: torch.Tensor, none: int, iou_min: float) -> torch.Tensor:
    """Per candidate: the class of the defect it is matched to (one-to-one, greedy by IoU),
    `none` when it overlaps no defect, -1 (left out) for a duplicate of a matched defect."""
    out = torch.full((len(boxes),), none, dtype=torch.long)
    if not len(boxes) or not len(gt):
        return out
    iou = box_iou(boxes, gt)
    out[iou.max(dim=1).values >= iou_min] = -1
    for c, g in greedy_pairs(iou, iou_min):
        out[c] = gt_cls[g]
    return out


@torch.no_grad()
def collect(vlm: DefectVLM, refiner: Refiner, data: FusedSet, floor: float, top_k: int, iou_min: float,
            views: int, seed: int, batch: int = 16) -> Examples:
    """Crops and labels of every proposal on `views` dihedral copies of each board."""
    rng = random.Random(seed)
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
        x = normalise(imgs)
        for b, (ds, (gt, gc)) in enumerate(zip(dets, gts)):
            if not ds:
                continue
            boxes = torch.tensor([d[2] for d in ds], dtype=torch.float32)
            index = torch.full((len(ds),), b)
            parts.append((refiner.crops(x, index, boxes).half(), peak_probs(out["heat"], index, boxes, vlm.stride),
                          log_size(boxes, vlm.stride), labels_for(boxes, gt, gc, n_cls, iou_min)))
    if not parts:  # an untrained head proposes nothing above the floor
        c = refiner.crop
        return Examples(torch.zeros(0, 3, c, c).half(), torch.zeros(0, n_cls), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    keep = [torch.cat([p[k] for p in parts]) for k in range(4)]
    ok = keep[3] >= 0
    return Examples(*(t[ok] for t in keep))


def _flip(crops: torch.Tensor, size: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # Defects have no orientation: random flips, and a transpose that swaps width and height.
    k = int(torch.randint(8, (1,), generator=g))
    if k & 1:
        crops = crops.flip(3)
    if k & 2:
        crops = crops.flip(2)
    if k & 4:
        crops, size = crops.transpose(2, 3), size[:, [1, 0]]
    return crops, size


def train_refiner(refiner: Refiner, ex: Examples, epochs: int, batch: int, lr: float, seed: int) -> dict:
    """Cross-entropy over class-or-none; returns counts, the last loss and the minutes spent."""
    start = time.time()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(refiner.parameters(), lr=lr, weight_decay=1e-4)
    n = len(ex.labels)
    steps = epochs * (n // batch)
    none = ex.head_probs.shape[1]
    figures = {"refine_examples": n, "refine_negatives": int((ex.labels == none).sum()), "refine_steps": steps}
    if not steps:  # fewer examples than one batch: the refiner stays as initialised
        return {**figures, "refine_minutes": 0.0}
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    refiner.train()
    loss = torch.tensor(0.0)
    bar = tqdm(total=steps, desc="refiner: training", unit="step")
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n - batch + 1, batch):
            idx = order[i:i + batch]
            crops, size = _flip(ex.crops[idx].float(), ex.log_size[idx], g)
            loss = F.cross_entropy(refiner.classify(crops, ex.head_probs[idx], size), ex.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    refiner.eval()
    return {**figures, "refine_final_loss": float(loss.detach()), "refine_minutes": (time.time() - start) / 60}
