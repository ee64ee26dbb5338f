"""The question suite's scoring: each kind against the boxes it asks for, read and none rates."""
import math

import pytest

from components.config import CLASSES
from components.data.records import Box
from components.evaluation.questions import Asked, score, suite, truth_of
from components.qa.grammar import Detection, Reading, answer_for

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)

SIZE = (640, 640)
BOXES = [Box(10, 10, 40, 40, "short"), Box(500, 500, 530, 540, "spur"), Box(600, 20, 630, 50, "short")]


def _asked(answer_fn):
    out = []
    for q in suite("b1", BOXES, CLASSES) + suite("t1", [], CLASSES):
        boxes = BOXES if q in suite("b1", BOXES, CLASSES) else []
        truth = truth_of(q, boxes, SIZE)
        out.append(Asked("b1", "test", q, answer_fn(q, truth), truth))
    return out


def _dets(boxes):
    return [Detection(b.cls, (b.x1, b.y1, b.x2, b.y2), 0.9) for b in boxes]


def test_truth_is_the_asked_class_and_area():
    spur = [q for q in suite("b1", BOXES, CLASSES) if q.reading.classes == ("spur",)]
    for q in spur:
        assert [b.cls for b in truth_of(q, BOXES, SIZE)] == ["spur"]
    tl = Reading((), False, "tl")
    from components.evaluation.questions import SuiteQuestion
    assert truth_of(SuiteQuestion("spatial", "x", tl), BOXES, SIZE) == [BOXES[0]]


def test_right_answers_score_one_and_none_found_answers_score_false_none():
    right = score(_asked(lambda q, truth: answer_for(q.reading, _dets(truth))), 0.33)
    for kind in ("locate", "exists", "count_class", "spatial", "multi", "describe", "count_total"):
        assert right[f"answer_f1_{kind}"] == 1.0, kind
    assert right["count_exact_count_class"] == 1.0 and right["false_none_rate"] == 0.0
    assert right["false_present_rate"] == 0.0 and right["question_read_accuracy"] == 1.0
    assert right["out_of_scope_taken_rate"] == 0.0

    # The bug of the issue: the reading is right, but nothing is ever reported.
    none = score(_asked(lambda q, truth: answer_for(q.reading, [])), 0.33)
    assert none["false_none_rate"] == 1.0 and none["answer_f1_locate"] == 0.0
    assert none["question_read_accuracy"] == 1.0

    # Misread: every question taken for describe-all (reports everything, reads wrong).
    everything = score(_asked(lambda q, truth: answer_for(Reading(), _dets(BOXES))), 0.33)
    assert everything["answer_f1_locate"] < 1.0 and everything["false_present_rate"] > 0.0
    assert everything["question_read_accuracy"] < 0.3 and everything["out_of_scope_taken_rate"] == 1.0
    assert not math.isnan(everything["answer_f1_spatial"])


def test_evaluate_asks_the_suite_and_exports_every_question(tiny_model, boards, tmp_path):
    import json

    from components.evaluation.metrics import prf
    from components.evaluation.run import evaluate_model, json_line
    from components.model.answers import match
    from components.qa.grammar import Detection as Det
    from tests.conftest import tiny_cfg

    cfg = tiny_cfg(tmp_path)
    metrics = evaluate_model(tiny_model.model("quantize"), boards[:2], cfg, tmp_path / "rep", "tiny",
                             export=tmp_path / "export")
    line = json.loads(json_line(metrics))
    assert {"f1_iou33", "answer_f1_locate", "answer_f1_spatial", "count_exact_count_class", "false_none_rate",
            "false_present_rate", "question_read_accuracy", "out_of_scope_taken_rate"} <= set(line)
    rows = [json.loads(x) for x in (tmp_path / "export" / "questions.jsonl").read_text().splitlines()]
    assert len(rows) == line["n_questions"] > 0
    assert {r["source"] for r in rows} == {"test", "template"} and {r["image_id"] for r in rows} >= {boards[0].sample_id}
    # The exported answers score to the same per-kind F1, independently of the evaluation code's objects.
    locate = [r for r in rows if r["kind"] == "locate"]
    tp = sum(len(match([Det(d["class"], tuple(d["box"]), d["confidence"]) for d in r["detections"]],
                       [Box(*t["box"], t["class"]) for t in r["truth"]], cfg.eval.iou)) for r in locate)
    n_pred, n_gt = sum(len(r["detections"]) for r in locate), sum(len(r["truth"]) for r in locate)
    assert prf(tp, n_pred, n_gt)["f1"] == line["answer_f1_locate"]
    assert all(r["read"] is not None and r["question"] for r in rows)
