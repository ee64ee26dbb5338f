"""Answering a set of boards, and matching the answers to the boards' boxes: what
calibration (training) and evaluation both need, so it lives below both.

The matching rule is DeepPCB's: a predicted defect is correct when it has the same class
as a not-yet-matched ground-truth box and IoU >= iou; predictions are matched greedily,
most confident first.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm

from components.config import EvalConfig
from components.data.records import Box, Sample
from components.qa.grammar import Answer, Detection

Kind = Literal["test", "template"]


@dataclass
class ImageResult:
    """One evaluated image: the sample it came from, which side of the pair, and the answer."""

    sample: Sample
    kind: Kind
    answer: Answer
    latency_s: float = 0.0
    answer_text: str | None = None
    """The answer as the inspector reads it (None: not recorded, e.g. a hand-made result)."""

    @property
    def gt(self) -> list[Box]:
        """Ground truth of the image shown: a template has none."""
        return list(self.sample.boxes) if self.kind == "test" else []


# ---- matching ---------------------------------------------------------------------------


def iou_matrix(preds: list[Detection], gts: list[Box]) -> torch.Tensor:
    """IoU of every prediction (rows) with every ground-truth box (columns)."""
    if not preds or not gts:
        return torch.zeros((len(preds), len(gts)), dtype=torch.float64)
    p = torch.tensor([d.box for d in preds], dtype=torch.float64)
    g = torch.tensor([(b.x1, b.y1, b.x2, b.y2) for b in gts], dtype=torch.float64)
    return box_iou(p, g)


def match(preds: list[Detection], gts: list[Box], iou: float) -> list[tuple[int, int]]:
    """DeepPCB rule: (pred index, gt index) pairs, same class and IoU >= iou, greedy by confidence.

    Each prediction takes the best-overlapping still-free box of its class; ties in
    confidence keep the answer's order (sorted() is stable).
    """
    ious = iou_matrix(preds, gts)
    taken: set[int] = set()
    pairs = []
    for i in sorted(range(len(preds)), key=lambda k: -preds[k].conf):
        free = [j for j, g in enumerate(gts) if j not in taken and g.cls == preds[i].cls and ious[i, j] >= iou]
        if free:
            j = max(free, key=lambda k: float(ious[i, k]))
            taken.add(j)
            pairs.append((i, j))
    return pairs


def correct_flags(result: ImageResult, iou: float) -> list[bool]:
    """Per reported detection: matched under the same-class rule (always False on templates)."""
    matched = {i for i, _ in match(result.answer.detections, result.gt, iou)}
    return [i in matched for i in range(len(result.answer.detections))]


# ---- answering boards -------------------------------------------------------------------


def reference(s: Sample, templates_as_input: bool) -> str | None:
    """The template the model is given with an image: the board's own, or none (no-template mode)."""
    return s.template_path if templates_as_input else None


def jobs(samples: list[Sample], templates: bool, templates_as_input: bool = True) -> list[tuple[Sample, str, str, str | None]]:
    """(sample, kind, image, template) for each board, then each template asked alone.

    templates_as_input=False: the model sees every board alone (template None), the
    no-template mode; templates are still asked about, as defect-free boards.
    """
    jobs = [(s, "test", s.test_path, reference(s, templates_as_input)) for s in samples]
    if templates:
        # A template is a defect-free board: ask about it against itself.
        jobs += [(s, "template", s.template_path, reference(s, templates_as_input))
                 for s in samples if s.template_path]
    return jobs


def run_inspector(inspector, samples: Iterable[Sample], cfg: EvalConfig, templates: bool = True,
                  desc: str = "evaluating", perturb: Callable | None = None,
                  templates_as_input: bool = True) -> list[ImageResult]:
    """One ImageResult per board and per template, answered in batches of cfg.batch_size.

    perturb(image) -> PIL image, if given, is applied to the image asked about (never to
    the template it is compared with; see components/evaluation/robustness.py).
    """
    samples = list(samples)
    if cfg.max_images:
        samples = samples[: cfg.max_images]
    todo = jobs(samples, templates, templates_as_input)
    results = []
    for i in tqdm(range(0, len(todo), cfg.batch_size), desc=desc, unit="batch"):
        chunk = todo[i:i + cfg.batch_size]
        boards = [(perturb(img) if perturb else img, tmpl) for _, _, img, tmpl in chunk]
        answers = inspector.ask_batch(boards, cfg.question)
        results += [ImageResult(s, kind, r.answer, r.latency_s, r.answer_text)
                    for (s, kind, _, _), r in zip(chunk, answers, strict=True)]
    return results


# ---- calibration bins ---------------------------------------------------------------


def reliability(confs: list[float], correct: list[bool], bins: int) -> list[dict]:
    """Equal-width confidence bins over [0, 1]: mean confidence, accuracy, count (NaN when empty)."""
    rows = []
    idx = [min(int(c * bins), bins - 1) for c in confs]
    for b in range(bins):
        members = [k for k, i in enumerate(idx) if i == b]
        rows.append({
            "bin": b,
            "lo": b / bins,
            "hi": (b + 1) / bins,
            "mean_confidence": float(np.mean([confs[k] for k in members])) if members else math.nan,
            "accuracy": float(np.mean([correct[k] for k in members])) if members else math.nan,
            "count": len(members),
        })
    return rows


def ece(table: list[dict]) -> float:
    """Expected calibration error: count-weighted |accuracy - confidence| over the bins."""
    n = sum(r["count"] for r in table)
    if not n:
        return 0.0
    return sum(r["count"] / n * abs(r["accuracy"] - r["mean_confidence"]) for r in table if r["count"])
