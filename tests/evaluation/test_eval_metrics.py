"""Exact values of the evaluation metrics on hand-made boards."""
import math

import pytest

from components.config import EvalConfig
from components.data.records import Box, Sample
from components.evaluation.columns import headline
from components.evaluation.metrics import compute_metrics
from components.model.answers import ImageResult, correct_flags, match
from components.qa.grammar import Answer, Detection, render

CFG = EvalConfig()
GT_A = Box(100, 100, 130, 130, "short")
GT_B = Box(300, 200, 340, 260, "spur")


def sample(sid: str, boxes: list[Box]) -> Sample:
    return Sample(sid, "g", f"/nowhere/{sid}_test.jpg", f"/nowhere/{sid}_temp.jpg", boxes)


def det(b: Box, conf: float = 0.9, cls: str | None = None, dx: int = 0) -> Detection:
    return Detection(cls or b.cls, (b.x1 + dx, b.y1, b.x2 + dx, b.y2), conf)


def res(s: Sample, dets: list[Detection], kind: str = "test", latency: float = 0.0) -> ImageResult:
    return ImageResult(s, kind, Answer(dets), latency)


def test_perfect_prediction():
    s1, s2 = sample("1", [GT_A, GT_B]), sample("2", [GT_A])
    m = compute_metrics([res(s1, [det(GT_A), det(GT_B)]), res(s2, [det(GT_A)])], CFG)
    assert (m["f1_iou33"], m["precision_iou33"], m["recall_iou33"]) == (1.0, 1.0, 1.0)
    assert m["center_rmse_px"] == 0.0
    assert m["count_exact"] == 1.0
    assert m["hallucination_rate"] == 0.0
    assert m["map50"] == pytest.approx(1.0)
    assert m["per_class"]["short"]["ap50"] == pytest.approx(1.0)
    assert math.isnan(m["per_class"]["open"]["ap50"])  # no GT of that class
    assert (m["n_images"], m["n_templates"]) == (2, 0)


def test_shift_below_iou_is_miss_and_false_positive():
    # 30 px box shifted 20 px: IoU = 300 / 1500 = 0.2 < 0.33.
    s = sample("1", [GT_A, GT_B])
    m = compute_metrics([res(s, [det(GT_A, dx=20), det(GT_B)])], CFG)
    assert (m["precision_iou33"], m["recall_iou33"], m["f1_iou33"]) == (0.5, 0.5, 0.5)
    assert m["hallucination_rate"] == 0.5
    assert m["count_exact"] == 1.0  # two reported, two there
    assert m["per_class"]["short"]["tp"] == 0 and m["per_class"]["short"]["n_pred"] == 1


def test_shift_at_iou_one_third_matches_with_exact_rmse():
    # 15 px shift: IoU = 450 / 1350 = 1/3 >= 0.33; centre off by exactly 15 px.
    m = compute_metrics([res(sample("1", [GT_A]), [det(GT_A, dx=15)])], CFG)
    assert m["f1_iou33"] == 1.0
    assert m["center_rmse_px"] == pytest.approx(15.0)


def test_wrong_class_is_not_correct_but_not_hallucinated():
    m = compute_metrics([res(sample("1", [GT_A]), [det(GT_A, conf=0.8, cls="spur")])], CFG)
    assert (m["precision_iou33"], m["recall_iou33"], m["f1_iou33"]) == (0.0, 0.0, 0.0)
    assert m["hallucination_rate"] == 0.0
    assert math.isnan(m["center_rmse_px"])
    assert m["ece"] == pytest.approx(0.8)  # one wrong detection at 0.8
    assert m["per_class"]["spur"]["precision"] == 0.0 and m["per_class"]["short"]["recall"] == 0.0


def test_template_report_is_false_alarm_and_wrong_for_ece():
    s = sample("1", [GT_A])
    results = [res(s, [det(GT_A, conf=1.0)]), res(s, [det(GT_A, conf=1.0)], "template"), res(sample("2", []), [], "template")]
    m = compute_metrics(results, CFG)
    assert m["template_false_alarm"] == 0.5
    assert m["f1_iou33"] == 1.0  # templates do not enter the DeepPCB score
    assert m["ece"] == pytest.approx(0.5)  # two detections at 1.0, one right
    assert (m["n_images"], m["n_templates"]) == (1, 2)


def test_ece_zero_for_calibrated_set_and_table():
    gts = [Box(40 * k, 0, 40 * k + 30, 30, "open") for k in range(5)]
    far = [(40 * k, 500, 40 * k + 30, 530) for k in range(2)]  # over no GT box
    # bin 0.7-0.8: 3 of 4 right at 0.75; bin 0.5-0.6: 1 of 2 right at 0.5.
    dets = [det(g, conf=0.75) for g in gts[:3]] + [Detection("open", far[0], 0.75)]
    dets += [det(gts[3], conf=0.5), Detection("open", far[1], 0.5)]
    m = compute_metrics([res(sample("1", gts), dets)], CFG)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    rows = {r["bin"]: r for r in m["reliability"] if r["count"]}
    assert len(m["reliability"]) == CFG.ece_bins
    assert (rows[7]["count"], rows[7]["accuracy"]) == (4, 0.75)
    assert (rows[5]["count"], rows[5]["accuracy"]) == (2, 0.5)


def test_ece_zero_without_detections():
    m = compute_metrics([res(sample("1", [GT_A]), [])], CFG)
    assert m["ece"] == 0.0
    assert (m["recall_iou33"], m["count_exact"]) == (0.0, 0.0)


def test_greedy_matching_prefers_confidence():
    s = sample("1", [GT_A])
    r = res(s, [det(GT_A, conf=0.4), det(GT_A, conf=0.9, dx=5)])
    assert match(r.answer.detections, r.gt, 0.33) == [(1, 0)]
    assert correct_flags(r, 0.33) == [False, True]


def test_map50_counts_a_confident_false_positive():
    # FP at 0.9 ranks above the TP at 0.5: precision 0.5 at recall 1 -> AP 0.5.
    fp = Detection("short", (500, 500, 530, 530), 0.9)
    m = compute_metrics([res(sample("1", [GT_A]), [fp, det(GT_A, conf=0.5)])], CFG)
    assert m["map50"] == pytest.approx(0.5)


def test_latency_percentiles_and_headline():
    rs = [res(sample(str(k), []), [], latency=(k + 1) / 10) for k in range(10)]
    m = compute_metrics(rs, CFG)
    assert m["latency_p50_s"] == pytest.approx(0.55)
    assert m["latency_p95_s"] == pytest.approx(0.955)
    flat = headline(m)
    assert "per_class" not in flat and flat["n_images"] == 10.0


def test_parse_failure_rate_counts_texts_the_grammar_rejects():
    s = sample("1", [GT_A])
    good = Answer([det(GT_A)])
    ok = ImageResult(s, "test", good, 0.0, render(good))
    bad = ImageResult(s, "test", good, 0.0, "[DEFECT] short 1,2 [EOF]")  # a box needs four numbers
    assert compute_metrics([ok, ok, ok, bad], CFG)["parse_failure_rate"] == 0.25
    assert compute_metrics([ok], CFG)["parse_failure_rate"] == 0.0
    assert math.isnan(compute_metrics([res(s, [det(GT_A)])], CFG)["parse_failure_rate"])  # no text recorded
