"""Spatial-branch candidates ("regions") and the prompt that shows them to the language model.

The decoder shows the language model each region as forced tokens `R<k> <quadrant>
<class> <relation> s<score bucket>` and the model decides on it, so every coordinate in an
answer comes from the head's peak + offset + size, mapped to original pixels by fuse.Frame.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from components.data.records import Box
from components.model.fuse import Frame
from components.model.refiner import candidate_limit, recheck
from components.model.spatial_head import decode
from components.model.tokenizer import normalize, score_token
from components.qa.grammar import IN, OUT, Detection, Reading, region_name
from components.qa.vocab import quadrant, reading_order


def calibrate(score: float, calibration: dict) -> float:
    """Platt scaling of a head score: sigmoid(a * logit(score) + b)."""
    s = min(max(score, 1e-6), 1 - 1e-6)
    z = calibration.get("a", 1.0) * math.log(s / (1 - s)) + calibration.get("b", 0.0)
    return 1 / (1 + math.exp(-z))


@torch.no_grad()
def propose(vlm, images_uint8: np.ndarray, frames: list[Frame]) -> list[list[Detection]]:
    """Candidates per picture, in reading order, boxes in original pixels, conf = raw head score
    (or, when the model has a refiner, its probability of its class, on its corrected box)."""
    _, decoded = _decoded(vlm, images_uint8)
    return [_regions(dets, frame, vlm.meta.classes) for dets, frame in zip(decoded, frames, strict=True)]


@torch.no_grad()
def propose_stages(vlm, images_uint8: np.ndarray, frames: list[Frame]) -> dict[str, list[list[Detection]]]:
    """What each step of the spatial branch keeps, per picture, boxes in original pixels:
    "candidates" (the head's peaks; with a refiner, at its generous floor) and "regions" (what
    `propose` returns: what the language model is shown). The miss report reads both."""
    candidates, decoded = _decoded(vlm, images_uint8)
    classes = vlm.meta.classes
    return {"candidates": [[Detection(classes[k], frame.to_original(b), s) for k, s, b in cands]
                           for cands, frame in zip(candidates, frames, strict=True)],
            "regions": [_regions(dets, frame, classes) for dets, frame in zip(decoded, frames, strict=True)]}


def _decoded(vlm, images_uint8: np.ndarray) -> tuple[list[list[tuple]], list[list[tuple]]]:
    """(the head's candidates, the regions kept of them) per picture, as (class id, score, box in
    model pixels); without a refiner both are the head's peaks above the region floor."""
    out = vlm.spatial(images_uint8)
    meta = vlm.meta
    if vlm.refiner is None:
        candidates = decode(out, vlm.stride, meta.region_floor, meta.max_regions)
        return candidates, candidates
    # The head proposes generously; the refiner names each candidate (or drops it).
    candidates = decode(out, vlm.stride, meta.refiner["floor"], candidate_limit(meta.max_regions))
    rechecked = recheck(vlm.refiner, out, candidates, vlm.stride, meta.region_floor,
                        meta.refiner.get("nms", 1.0), meta.refiner.get("passes", 1),
                        meta.refiner.get("merge_gap"), meta.refiner.get("merge_overlap"),
                        meta.refiner.get("tta_views", 1))
    return candidates, [sorted(ds, key=lambda d: -d[1])[: meta.max_regions] for ds in rechecked]


def _regions(dets: list[tuple], frame: Frame, classes: list[str]) -> list[Detection]:
    """Decoded (class id, score, box) as Detections in original pixels, in reading order."""
    regs = [Detection(classes[k], frame.to_original(box), score) for k, score, box in dets]
    return [regs[i] for i in reading_order([Box(*r.box, cls=r.cls) for r in regs])]


def descriptor(i: int, region: Detection, size: tuple[int, int], reading: Reading) -> list[str]:
    """The forced tokens that introduce region i in the scan: name, quadrant, class, relation to
    the question ([IN]: in the asked area; from `Reading.scans`), score bucket.

    The score bucket comes last on purpose: the decision is predicted at its position, so
    the strongest evidence is the very token the model reads there (no attention needed).
    Whether the region is in the asked area sits one step back: the decision need not match
    the region's quadrant against the reading far back in the scan, which the small
    from-scratch model never learnt to do (every class question answered "none found"). The
    asked class plays no part in the decision (it is the same as for "all defects" there): the
    answer keeps the asked classes among the decided defects (`grammar.resolve_scan`), so a
    region the spatial branch named wrongly is still found when the model re-classifies it.
    """
    rel = IN if reading.scans(region.center, size) else OUT
    return [region_name(i), quadrant(region.center, size), region.cls, rel, score_token(region.conf)]


def descriptors(regions: list[Detection], size: tuple[int, int], reading: Reading) -> list[list[str]]:
    return [descriptor(i, r, size, reading) for i, r in enumerate(regions)]


def prompt_text(question: str, words: set[str] | None = None) -> str:
    """The user turn's text after the picture: the inspector's question, normalised (lower case,
    contractions spelled out, and with a word-level vocabulary `words`, typos mended)."""
    return f"question : {normalize(question, words)}"


def match_regions(regions: list[Detection], boxes: list[Box], iou_min: float) -> dict[int, int]:
    """Ground-truth index -> region index, greedy by IoU (class-agnostic), one-to-one."""
    if not regions or not boxes:
        return {}
    from torchvision.ops import box_iou

    r = torch.tensor([d.box for d in regions], dtype=torch.float32)
    g = torch.tensor([[b.x1, b.y1, b.x2, b.y2] for b in boxes], dtype=torch.float32)
    return dict(greedy_pairs(box_iou(g, r), iou_min))


def greedy_pairs(iou: torch.Tensor, iou_min: float) -> list[tuple[int, int]]:
    """(row, column) pairs of an IoU matrix, one-to-one, highest IoU first, each >= iou_min."""
    ranked = sorted(((v, i, j) for i, row in enumerate(iou.tolist()) for j, v in enumerate(row)), reverse=True)
    pairs: list[tuple[int, int]] = []
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for v, i, j in ranked:
        if v < iou_min:
            break
        if i not in used_rows and j not in used_cols:
            pairs.append((i, j))
            used_rows.add(i)
            used_cols.add(j)
    return pairs
