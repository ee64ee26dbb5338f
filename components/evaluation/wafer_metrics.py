"""The wafer line's pattern metrics, from the branch's label distribution per map.

Accuracy alone means little on WM-811K ("None" everywhere scores ~0.59), so the headline is
macro F1 over the labels, beside the worst label's recall and how often a None map is
reported with a pattern.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

from components.model.answers import ece, reliability

NONE = "None"


def pattern_metrics(probs: torch.Tensor, truth: list[str], labels: list[str], ece_bins: int) -> dict:
    """Headline figures, the per-label table and the confusion matrix (rows truth, columns predicted)."""
    if NONE not in labels:
        raise ValueError(f"the labels {labels} have no {NONE!r} (no systematic pattern)")
    unknown = sorted(set(truth) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} of the data are not the line's {labels}")
    k = len(labels)
    y = torch.tensor([labels.index(t) for t in truth])
    conf, pred = probs.max(1)
    cm = multiclass_confusion_matrix(pred, y, num_classes=k)
    support = cm.sum(1)
    recall = cm.diag() / support.clamp(min=1)
    precision = cm.diag() / cm.sum(0).clamp(min=1)
    f1 = multiclass_f1_score(pred, y, num_classes=k, average=None)
    present = support > 0
    none = labels.index(NONE)
    is_none = y == none
    table = reliability(conf.tolist(), (pred == y).tolist(), bins=ece_bins)
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
    }
