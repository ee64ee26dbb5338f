"""Two models on the same boards, compared as a paired test: per-board sums, and a bootstrap of
candidate - champion over boards.

Every gated figure that is a ratio of sums over boards (F1, count exactness, hallucination,
false-none, ...) is rebuilt from per-board sums, so resampling boards costs array sums, not a
re-evaluation. ECE (binned) and latency (timed at different moments) are not: the gate judges
them on their absolute limits only.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from components.evaluation.metrics import exact_center, prf
from components.evaluation.questions import COUNT_KINDS, KINDS, Asked, same_reading
from components.model.answers import ImageResult, iou_matrix, match

BOARDS = "boards.json"
"""File name of the per-board sums beside an evaluation's metrics.json."""

Stats = dict[str, float]


def _add(s: defaultdict, **values: float) -> None:
    for k, v in values.items():
        s[k] += float(v)


def _image_sums(s: defaultdict, r: ImageResult, iou: float) -> None:
    dets, gts = r.answer.detections, r.gt
    if r.kind == "template":
        _add(s, templates=1, template_alarms=bool(dets))
        return
    pairs = match(dets, gts, iou)
    sq = [sum((a - b) ** 2 for a, b in zip(exact_center(dets[i]), gts[j].center, strict=True)) for i, j in pairs]
    ious = iou_matrix(dets, gts)
    _add(s, boards=1, tp=len(pairs), n_pred=len(dets), n_gt=len(gts), sq_err=sum(sq), n_matched=len(pairs),
         count_ok=len(dets) == len(gts), invented=sum(1 for row in ious if not bool((row >= iou).any())))


def _question_sums(s: defaultdict, a: Asked, iou: float) -> None:
    kind, dets = a.question.kind, a.answer.detections
    _add(s, questions=1, read_ok=same_reading(a.answer.asked, a.question.reading))
    if a.question.reading.off:
        return
    _add(s, **{f"{kind}.tp": len(match(dets, a.truth, iou)), f"{kind}.n_pred": len(dets), f"{kind}.n_gt": len(a.truth)})
    if kind in COUNT_KINDS:
        _add(s, **{f"{kind}.n": 1, f"{kind}.ok": len(dets) == len(a.truth)})
    if a.truth:
        _add(s, with_truth=1, said_none=not dets)


def board_stats(results: list[ImageResult], asked: list[Asked], iou: float) -> dict[str, Stats]:
    """Per board id (a board and its template together): the sums every paired figure is built from."""
    out: dict[str, defaultdict] = defaultdict(lambda: defaultdict(float))
    for r in results:
        _image_sums(out[r.sample.sample_id], r, iou)
    for a in asked:
        _question_sums(out[a.image_id], a, iou)
    return {k: dict(v) for k, v in out.items()}


def _f1(tp: float, n_pred: float, n_gt: float) -> float:
    return prf(tp, n_pred, n_gt)["f1"]


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def figures(s: Stats) -> dict[str, float]:
    """The gated figures of summed stats (same definitions as metrics.compute_metrics / questions.score)."""
    g = lambda k: s.get(k, 0.0)  # noqa: E731
    out = {
        "f1_iou33": _f1(g("tp"), g("n_pred"), g("n_gt")),
        "center_rmse_px": math.sqrt(g("sq_err") / g("n_matched")) if g("n_matched") else math.nan,
        "count_exact": _ratio(g("count_ok"), g("boards")),
        "hallucination_rate": _ratio(g("invented"), g("n_pred")) if g("n_pred") else 0.0,
        "template_false_alarm": _ratio(g("template_alarms"), g("templates")),
    }
    if g("questions"):
        for kind in KINDS:
            if f"{kind}.n_gt" in s or f"{kind}.n_pred" in s:
                out[f"answer_f1_{kind}"] = _f1(g(f"{kind}.tp"), g(f"{kind}.n_pred"), g(f"{kind}.n_gt"))
            if kind in COUNT_KINDS and g(f"{kind}.n"):
                out[f"count_exact_{kind}"] = g(f"{kind}.ok") / g(f"{kind}.n")
        out["false_none_rate"] = _ratio(g("said_none"), g("with_truth"))
        out["question_read_accuracy"] = g("read_ok") / g("questions")
    return out


def _matrix(stats: dict[str, Stats], ids: list[str], keys: list[str]) -> np.ndarray:
    return np.array([[stats[i].get(k, 0.0) for k in keys] for i in ids])


def bootstrap(candidate: dict[str, Stats], champion: dict[str, Stats], metrics: list[str], n: int, seed: int,
              level: float, figures_of: Callable[[Stats], dict[str, float]] | None = None
              ) -> dict[str, tuple[float, float, float]]:
    """metric -> (candidate - champion on all shared boards, the `level` interval's low, high),
    resampling the shared boards with replacement n times (one draw for both models: paired).
    figures_of: how summed stats become figures (default: the boards' `figures`; the wafer
    line passes its maps' `wafer_metrics.sum_figures`)."""
    figures_of = figures_of or figures
    ids = sorted(set(candidate) & set(champion))
    if not ids:
        raise ValueError("the candidate and the champion were evaluated on no common board")
    keys = sorted({k for st in (candidate, champion) for i in ids for k in st[i]})
    a, b = _matrix(candidate, ids, keys), _matrix(champion, ids, keys)

    def diffs(rows) -> dict[str, float]:
        fa, fb = (figures_of(dict(zip(keys, m[rows].sum(0), strict=True))) for m in (a, b))
        return {m: fa.get(m, math.nan) - fb.get(m, math.nan) for m in metrics}

    rng = np.random.default_rng(seed)
    draws = [diffs(rng.integers(0, len(ids), len(ids))) for _ in range(n)]
    point, tail = diffs(np.arange(len(ids))), (1 - level) / 2 * 100
    out = {}
    for m in metrics:
        d = np.array([x[m] for x in draws if math.isfinite(x[m])])
        lo, hi = (np.percentile(d, [tail, 100 - tail]) if len(d) else (math.nan, math.nan))
        out[m] = (point[m], float(lo), float(hi))
    return out


def save(stats: dict[str, Stats], path: Path) -> None:
    path.write_text(json.dumps(stats, indent=1, sort_keys=True))


def load(path: str | Path) -> dict[str, Stats]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no per-board sums at {path}: evaluate the model again with this version")
    return json.loads(path.read_text())
