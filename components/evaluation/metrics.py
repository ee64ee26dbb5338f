"""Evaluation metrics over a model's answers on test boards and their templates.

The headline rule is DeepPCB's: a predicted defect is correct when it has the same
class as a not-yet-matched ground-truth box and IoU >= cfg.iou (0.33); predictions
are matched greedily, most confident first. Templates are defect-free, so anything
reported on one is wrong by definition.

Undefined values (e.g. centre RMSE with no matched pair) are NaN, so a gate that
compares them against a threshold fails rather than passes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from components.config import CLASSES, EvalConfig
from components.model.answers import ImageResult, correct_flags, ece, iou_matrix, match, reliability
from components.qa.grammar import Detection, GrammarError, parse

# ---- precision / recall -------------------------------------------------------------------


def prf(tp: int, n_pred: int, n_gt: int) -> dict[str, float]:
    """Precision, recall, F1. With nothing predicted, precision is 1 only if nothing was there."""
    precision = tp / n_pred if n_pred else float(n_gt == 0)
    recall = tp / n_gt if n_gt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _class_counts(tests: list[ImageResult], iou: float, classes: tuple[str, ...]) -> dict[str, list[int]]:
    """Per class [tp, n_pred, n_gt] over test images."""
    counts = {c: [0, 0, 0] for c in classes}
    for r in tests:
        dets = r.answer.detections
        for i, _ in match(dets, r.gt, iou):
            counts.setdefault(dets[i].cls, [0, 0, 0])[0] += 1
        for d in dets:
            counts.setdefault(d.cls, [0, 0, 0])[1] += 1
        for b in r.gt:
            counts.setdefault(b.cls, [0, 0, 0])[2] += 1
    return counts


def center_rmse(tests: list[ImageResult], iou: float) -> float:
    """RMSE of the distance between matched prediction and box centres, in original pixels."""
    sq = []
    for r in tests:
        dets, gts = r.answer.detections, r.gt
        for i, j in match(dets, gts, iou):
            (px, py), (gx, gy) = exact_center(dets[i]), gts[j].center
            sq.append((px - gx) ** 2 + (py - gy) ** 2)
    return math.sqrt(sum(sq) / len(sq)) if sq else math.nan


def exact_center(d: Detection) -> tuple[float, float]:
    # Unrounded, unlike Detection.center, so a perfect box gives exactly 0.
    return ((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2)


# ---- hallucination, counting, false alarms ----------------------------------------------


def hallucination_rate(tests: list[ImageResult], iou: float) -> float:
    """Share of reported defects on test images overlapping no GT box (any class) with IoU >= iou.

    Class-agnostic on purpose: a defect found at the right place but named wrongly
    is a classification error (it already costs precision), not an invented defect.
    Duplicates on a real defect are likewise not hallucinations. Templates are
    counted separately by template_false_alarm.
    """
    n, bad = 0, 0
    for r in tests:
        ious = iou_matrix(r.answer.detections, r.gt)
        n += ious.shape[0]
        bad += sum(1 for row in ious if not bool((row >= iou).any()))
    return bad / n if n else 0.0


def count_exact(tests: list[ImageResult]) -> float:
    return share([len(r.answer.detections) == len(r.gt) for r in tests])


def template_false_alarm(templates: list[ImageResult]) -> float:
    return share([bool(r.answer.detections) for r in templates])


def share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


# ---- calibration ---------------------------------------------------------------------


def _calibration_inputs(results: list[ImageResult], iou: float) -> tuple[list[float], list[bool]]:
    confs: list[float] = []
    correct: list[bool] = []
    for r in results:
        confs += [d.conf for d in r.answer.detections]
        correct += correct_flags(r, iou)
    return confs, correct


# ---- mAP ----------------------------------------------------------------------------


def map50(tests: list[ImageResult], classes: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """COCO-style class-aware AP at IoU 0.5 (torchmetrics), overall and per class (NaN: no GT)."""
    from torchmetrics.detection import MeanAveragePrecision

    if not tests:
        return math.nan, {c: math.nan for c in classes}
    metric = MeanAveragePrecision(box_format="xyxy", iou_thresholds=[0.5], class_metrics=True)
    metric.update([_map_pred(r, classes) for r in tests], [_map_target(r, classes) for r in tests])
    out = metric.compute()
    per_class = {c: math.nan for c in classes}
    for label, ap in zip(out["classes"].reshape(-1).tolist(), out["map_per_class"].reshape(-1).tolist(), strict=True):
        per_class[classes[label]] = ap if ap >= 0 else math.nan  # COCO writes -1 for "no GT"
    overall = float(out["map"])
    return (overall if overall >= 0 else math.nan), per_class


def _map_pred(r: ImageResult, classes: tuple[str, ...]) -> dict:
    dets = [d for d in r.answer.detections if d.cls in classes]
    return {
        "boxes": torch.tensor([d.box for d in dets], dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor([d.conf for d in dets], dtype=torch.float32),
        "labels": torch.tensor([classes.index(d.cls) for d in dets], dtype=torch.long),
    }


def _map_target(r: ImageResult, classes: tuple[str, ...]) -> dict:
    gts = [b for b in r.gt if b.cls in classes]
    return {
        "boxes": torch.tensor([(b.x1, b.y1, b.x2, b.y2) for b in gts], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([classes.index(b.cls) for b in gts], dtype=torch.long),
    }


# ---- latency and the whole set ------------------------------------------------------------


def parse_failure_rate(results: list[ImageResult], classes: tuple[str, ...]) -> float:
    """Share of recorded answer texts that the answer grammar's parser rejects (NaN: none recorded)."""
    texts = [r.answer_text for r in results if r.answer_text is not None]
    if not texts:
        return math.nan
    failed = 0
    for text in texts:
        try:
            parse(text, classes)
        except GrammarError:
            failed += 1
    return failed / len(texts)


def latency(results: list[ImageResult]) -> dict[str, float]:
    lat = [r.latency_s for r in results]
    if not lat:
        return {"latency_p50_s": math.nan, "latency_p95_s": math.nan}
    return {"latency_p50_s": float(np.percentile(lat, 50)), "latency_p95_s": float(np.percentile(lat, 95))}


def compute_metrics(results: list[ImageResult], cfg: EvalConfig, classes: tuple[str, ...] = CLASSES) -> dict:
    """All metrics as one dict: flat headline numbers, plus `per_class` and `reliability`."""
    tests = [r for r in results if r.kind == "test"]
    templates = [r for r in results if r.kind == "template"]
    counts = _class_counts(tests, cfg.iou, classes)
    tp, n_pred, n_gt = (sum(c[k] for c in counts.values()) for k in range(3))
    overall = prf(tp, n_pred, n_gt)
    m50, ap = map50(tests, classes)
    table = reliability(*_calibration_inputs(results, cfg.iou), bins=cfg.ece_bins)
    return {
        "f1_iou33": overall["f1"],
        "precision_iou33": overall["precision"],
        "recall_iou33": overall["recall"],
        "map50": m50,
        "center_rmse_px": center_rmse(tests, cfg.iou),
        "count_exact": count_exact(tests),
        "hallucination_rate": hallucination_rate(tests, cfg.iou),
        "template_false_alarm": template_false_alarm(templates),
        "ece": ece(table),
        "parse_failure_rate": parse_failure_rate(results, classes),
        **latency(results),
        "n_images": len(tests),
        "n_templates": len(templates),
        "per_class": {
            c: {**prf(*counts[c]), "ap50": ap.get(c, math.nan), "tp": counts[c][0], "n_pred": counts[c][1], "n_gt": counts[c][2]}
            for c in counts
        },
        "reliability": table,
    }
