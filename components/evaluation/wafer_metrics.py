"""The wafer line's pattern metrics, from the branch's label distribution per map.

Accuracy alone means little on WM-811K ("None" everywhere scores ~0.59), so the headline is
macro F1 over the labels, beside the worst label's recall and how often a None map is
reported with a pattern.
"""
from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

from components.model.answers import ece, reliability

NONE = "None"


def pattern_metrics(probs: torch.Tensor, truth: list[str], labels: list[str], ece_bins: int) -> dict:
    """The figures of the branch's likeliest label per map, with its probability as confidence."""
    conf, pred = probs.max(1)
    return label_metrics([labels[i] for i in pred.tolist()], conf.tolist(), truth, labels, ece_bins)


def label_metrics(pred: list[str], conf: list[float], truth: list[str], labels: list[str], ece_bins: int) -> dict:
    """Headline figures of stated labels and their confidences, the per-label table and the confusion
    matrix (rows truth, columns predicted)."""
    if NONE not in labels:
        raise ValueError(f"the labels {labels} have no {NONE!r} (no systematic pattern)")
    unknown = sorted(set(truth) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} of the data are not the line's {labels}")
    k = len(labels)
    y = torch.tensor([labels.index(t) for t in truth])
    pred = torch.tensor([labels.index(p) for p in pred])
    cm = multiclass_confusion_matrix(pred, y, num_classes=k)
    support = cm.sum(1)
    recall = cm.diag() / support.clamp(min=1)
    precision = cm.diag() / cm.sum(0).clamp(min=1)
    f1 = multiclass_f1_score(pred, y, num_classes=k, average=None)
    present = support > 0
    none = labels.index(NONE)
    is_none = y == none
    table = reliability(list(conf), (pred == y).tolist(), bins=ece_bins)
    return {
        "macro_f1": float(f1[present].mean()),
        "accuracy": float((pred == y).float().mean()),
        "none_false_alarm": float((pred[is_none] != none).float().mean()) if is_none.any() else float("nan"),
        "pattern_recall_min": float(recall[present].min()),
        "ece": ece(table),
        "n_maps": len(truth),
        "per_label": [{"label": lb, "maps": int(support[i]), "precision": float(precision[i]),
                       "recall": float(recall[i]), "f1": float(f1[i])} for i, lb in enumerate(labels)],
        "confusion": cm.tolist(),
        "reliability": table,
    }


Stats = dict[str, float]


def map_sums(truth: str, pred: str, **more: float) -> Stats:
    """One map's share of the sums every gated wafer figure is rebuilt from (the paired
    comparison with the champion resamples maps and adds these up): its true and stated label,
    whether they agree, and `more` (loc_n / loc_ok, share_n / share_err, questions / read_ok)."""
    out = {f"truth.{truth}": 1.0, f"pred.{pred}": 1.0, f"tp.{truth}": float(truth == pred)}
    if truth == NONE:
        out |= {"none_maps": 1.0, "none_alarm": float(pred != NONE)}
    return out | {k: float(v) for k, v in more.items()}


def sum_figures(s: Stats) -> dict[str, float]:
    """The gated wafer figures of summed map_sums (the same definitions as label_metrics and
    wafer_evaluate: macro F1 over the labels the maps hold, the worst of their recalls)."""
    g = lambda k: s.get(k, 0.0)  # noqa: E731
    labels = [k.split(".", 1)[1] for k in s if k.startswith("truth.") and s[k] > 0]
    f1 = [2 * g(f"tp.{lb}") / (g(f"truth.{lb}") + g(f"pred.{lb}")) for lb in labels]
    ratio = lambda a, b: g(a) / g(b) if g(b) else math.nan  # noqa: E731
    return {"macro_f1": sum(f1) / len(f1) if f1 else math.nan,
            "pattern_recall_min": min((g(f"tp.{lb}") / g(f"truth.{lb}") for lb in labels), default=math.nan),
            "none_false_alarm": ratio("none_alarm", "none_maps"), "location_accuracy": ratio("loc_ok", "loc_n"),
            "fail_share_mae": ratio("share_err", "share_n"), "question_read_accuracy": ratio("read_ok", "questions")}
