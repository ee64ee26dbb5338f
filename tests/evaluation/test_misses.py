"""The miss report: each ground-truth box is charged to the first step that lost it, and the
breakdowns add up; on a tiny trained model the steps really are the model's."""
from __future__ import annotations

import numpy as np
import pytest

from components.config import EvalConfig
from components.data.records import Box
from components.evaluation import misses
from components.evaluation.report import render_html
from components.model.answers import run_inspector
from components.model.inference import Inspector
from components.qa.grammar import Detection

A, B, C, D = (Box(10, 10, 30, 30, "short"), Box(100, 100, 120, 120, "spur"), Box(200, 200, 230, 210, "open"),
              Box(300, 300, 340, 340, "copper"))


def _det(b: Box, cls: str | None = None, shift: float = 0) -> Detection:
    return Detection(cls or b.cls, (int(b.x1 + shift), int(b.y1), int(b.x2 + shift), int(b.y2)), 0.9)


def test_each_box_is_charged_to_the_first_step_that_lost_it():
    gts = [A, B, C, D]
    stages = {"candidates": [_det(A, "spur"), _det(B), _det(C)],  # D: never proposed
              "regions": [_det(A), _det(B, "pin-hole")]}          # C dropped; B renamed
    answer = [_det(A)]
    assert misses.outcomes(stages, answer, gts, 0.33) == [
        misses.FOUND, "misnamed by the refiner", "dropped by the refiner", "not proposed"]
    # a region of the right class the answer leaves out, or answers with a box that no longer matches
    stages = {"candidates": [_det(A)], "regions": [_det(A)]}
    assert misses.outcomes(stages, [], [A], 0.33) == ["left out of the answer"]
    assert misses.outcomes(stages, [_det(A, shift=40)], [A], 0.33) == ["left out of the answer"]
    # the language model renames a region the refiner misnamed: found
    stages = {"candidates": [_det(B)], "regions": [_det(B, "pin-hole")]}
    assert misses.outcomes(stages, [_det(B)], [B], 0.33) == [misses.FOUND]


def test_one_peak_over_two_defects_finds_only_one():
    twins = [Box(10, 10, 30, 30, "short"), Box(12, 12, 31, 31, "short")]
    stages = {"candidates": [_det(twins[0])], "regions": [_det(twins[0])]}
    assert sorted(misses.outcomes(stages, [_det(twins[0])], twins, 0.33)) == [misses.FOUND, "not proposed"]


def test_neighbours_are_told_by_head_cell():
    boxes = [Box(0, 0, 10, 10, "short"), Box(4, 4, 12, 12, "spur"),   # centres in cell (0, 0)
             Box(25, 0, 35, 10, "open"),                               # cell (1, 0): next to both
             Box(200, 200, 210, 210, "copper")]                         # far away
    assert misses.neighbours(boxes, (20.0, 20.0)) == ["same cell", "same cell", "adjacent cell", "alone"]


def test_contrast_reads_the_template_difference_or_the_surround():
    image = np.full((100, 100), 0.5, np.float32)
    image[40:60, 40:60] = 0.9
    template = np.full((100, 100), 0.5, np.float32)
    box = Box(40, 40, 60, 60, "short")
    assert misses.contrast(image, template, box) == pytest.approx(0.4)
    assert misses.contrast(image, None, box) == pytest.approx(0.4)
    assert misses.contrast(image, image, box) == 0.0


def _followed(outcome: str, size: float, near: str = "alone", contrast: float = 0.1, cls: str = "short"):
    return misses.Followed("b1", Box(0, 0, size, size, cls), outcome, size, near, contrast)


def test_the_breakdowns_add_up_to_the_totals():
    rows = [_followed(misses.FOUND, 10), _followed("not proposed", 10, "same cell", 0.01),
            _followed("dropped by the refiner", 40, cls="spur", contrast=0.5), _followed(misses.FOUND, 20, contrast=0.3)]
    rep = misses.report(rows, EvalConfig())
    assert rep["n_defects"] == 4 and rep["recall"] == 0.5
    assert rep["lost"] == {"not proposed": 1, "dropped by the refiner": 1, "misnamed by the refiner": 0,
                           "left out of the answer": 0}
    for dim in misses.DIMENSIONS:
        assert sum(t["n"] for t in rep["by"][dim].values()) == 4, dim
        for step in misses.LOST:
            assert sum(t["lost"][step] for t in rep["by"][dim].values()) == rep["lost"][step]
    assert rep["by"]["size"]["< 30 px"] == {"n": 3, "recall": 2 / 3, "lost": {**rep["lost"], "dropped by the refiner": 0}}
    assert rep["by"]["size"][">= 40 px"]["lost"]["dropped by the refiner"] == 1
    assert list(rep["by"]["size"]) == ["< 30 px", ">= 40 px"]  # small to large, not by name
    assert [k.split()[0] for k in rep["by"]["contrast"]] == ["low", "mid", "high"]
    assert rep["by"]["neighbours"]["same cell"]["recall"] == 0.0
    assert [e["lost"] for e in rep["examples"]] == ["not proposed", "dropped by the refiner"]
    assert "not proposed" in misses.table(rep)


def test_a_trained_model_is_followed_through_its_own_steps(tiny_model, boards):
    inspector = Inspector.load(tiny_model.model("quantize"), quantize=False)
    cfg = EvalConfig(batch_size=4)
    results = run_inspector(inspector, boards[:3], cfg)
    rows = misses.follow(inspector, results, cfg)
    assert len(rows) == sum(len(b.boxes) for b in boards[:3])
    found = sum(r.outcome == misses.FOUND for r in rows)
    tps = sum(len(misses._matched(r.answer.detections, r.gt, cfg.iou, True)) for r in results if r.kind == "test")
    assert found == tps  # "found" is exactly the describe-all answer's true positives
    stages = inspector.stage_regions([(boards[0].test_path, boards[0].template_path)])[0]
    regions = inspector.regions_batch([(boards[0].test_path, boards[0].template_path)])[0]
    assert [r.box for r in stages["regions"]] == [r.box for r in regions]
    assert len(stages["candidates"]) >= len(stages["regions"]) or inspector.vlm.refiner is None
    rep = misses.report(rows, cfg)
    page = render_html({"misses": rep}, results, cfg)
    assert '<table id="misses-size">' in page and '<table id="misses-neighbours">' in page
