"""Robustness perturbations, the blur-consistency check, and evaluate's no-template / robustness modes."""
import json

import numpy as np
import pytest
from PIL import Image

from components.config import EvalConfig
from components.evaluation.evaluate import evaluate
from components.evaluation.report import render_html
from components.evaluation.robustness import perturbations
from components.evaluation.run import evaluate_model, json_line
from components.model.answers import run_inspector
from components.model.blur_check import BlurChecked, consistent
from components.model.inference import Inspector, InspectResult
from components.qa.grammar import Answer, Detection, parse, render
from tests.conftest import tiny_cfg

pytestmark = pytest.mark.model  # the session's tiny trained model (tests/conftest.py)

SHORT = Detection("short", (100, 100, 140, 140), 0.9)
SPUR = Detection("spur", (300, 300, 320, 330), 0.8)


class FixedAnswers:
    """An inner inspector that answers every board with `plain` and sees `soft` as the regions of
    every (blurred) copy it is shown; `seen` records what each call got."""

    def __init__(self, plain: list[Detection], soft: list[Detection], count: bool = False):
        self.plain, self.soft, self.count, self.seen = plain, soft, count, []
        self.vlm = None

    @property
    def version_info(self):
        return {"dataset_version": "fake"}

    def ask(self, image, question, template=None):
        return self.ask_batch([(image, template)], question)[0]

    def ask_batch(self, boards, question):
        self.seen.append(("ask", boards))
        return [self._answer(self.plain) for _ in boards]

    def ask_many(self, image, template, questions):
        return [self._answer(self.plain) for _ in questions]

    def says(self, answer):
        from components.qa.sentence import sentence

        return sentence(answer)

    def regions_batch(self, boards):
        self.seen.append(("regions", boards))
        return [list(self.soft) for _ in boards]

    def _answer(self, dets):
        answer = Answer(list(dets), count=len(dets) if self.count else None, none_class=None if dets else "")
        return InspectResult(answer, render(answer), "[ASK] all list [EOF]", list(dets), 0.1)


def test_perturbations_change_the_board_and_keep_its_size(boards):
    original = Image.open(boards[0].test_path)
    for name, (severity, fn) in perturbations(EvalConfig()).items():
        out = fn(boards[0].test_path)
        assert out.size == original.size, name
        diff = np.abs(np.asarray(out.convert("L"), dtype=int) - np.asarray(original.convert("L"), dtype=int))
        assert diff.mean() > 0.5, f"{name} (severity {severity}) barely changed the board"
        assert fn(original).size == original.size  # PIL images in, too


def test_blur_check_drops_a_defect_the_blurred_copy_does_not_confirm(boards):
    moved = Detection("short", (104, 102, 142, 144), 0.7)   # same defect, slightly shifted: IoU ~0.8
    wrong_class = Detection("open", (300, 300, 320, 330), 0.7)  # same place as SPUR, other class
    inner = FixedAnswers([SHORT, SPUR], [moved, wrong_class], count=True)
    checked = BlurChecked(inner, sigma=2.0, iou=0.3, same_class=True)
    r = checked.ask(boards[0].test_path, "How many defects?", boards[0].template_path)
    assert r.answer.detections == [SHORT]
    assert r.answer.count == 1 and not r.answer.none_found
    assert parse(r.answer_text).detections[0].box == SHORT.box
    (first, [plain]), (second, [soft]) = inner.seen
    assert (first, second) == ("ask", "regions")  # the board answered, then its blurred copy looked at
    assert plain == (boards[0].test_path, boards[0].template_path)
    # Board and template are both blurred, same size as the originals.
    assert all(isinstance(im, Image.Image) and im.size == Image.open(boards[0].test_path).size for im in soft)
    assert r.latency_s > 0


def test_blur_check_by_default_keeps_a_defect_whose_class_flips_under_blur(boards):
    wrong_class = Detection("open", (300, 300, 320, 330), 0.7)  # same place as SPUR, other class
    far = Detection("short", (500, 500, 520, 520), 0.7)       # nowhere near SHORT
    checked = BlurChecked(FixedAnswers([SHORT, SPUR], [wrong_class, far]), sigma=2.0, iou=0.3, same_class=False)
    r = checked.ask(boards[0].test_path, "Describe all defects.", boards[0].template_path)
    assert r.answer.detections == [SPUR]
    assert consistent([SPUR], [wrong_class], 0.3) == [SPUR]
    assert consistent([SPUR], [wrong_class], 0.3, same_class=True) == []


def test_blur_check_that_drops_everything_says_none_found(boards):
    checked = BlurChecked(FixedAnswers([SPUR], [], count=True), sigma=1.0, iou=0.3, same_class=False)
    r = checked.ask(boards[0].test_path, "How many defects?")
    assert r.answer.none_found and r.answer.count == 0
    assert r.answer_text == "[COUNT] 0 [NONE] [EOF]"
    assert consistent([SHORT], [SHORT], 0.99) == [SHORT]


def test_blur_check_on_the_tiny_model_answers_in_grammar(tiny_model, boards):
    inner = Inspector.load(tiny_model.model("quantize"))
    checked = BlurChecked(inner, sigma=1.5, iou=0.3, same_class=False)
    pairs = [(b.test_path, b.template_path) for b in boards[:2]]
    plain = inner.ask_batch(pairs, "Describe all defects.")
    assert inner.regions_batch(pairs) == [p.regions for p in plain]  # what the answer decided on
    both = checked.ask_batch(pairs, "Describe all defects.")
    for p, c in zip(plain, both, strict=True):
        assert set(c.answer.detections) <= set(p.answer.detections)
        parse(c.answer_text)
    assert checked.vlm is inner.vlm and "blur_check_sigma" in checked.version_info


def test_no_template_mode_asks_boards_alone(boards):
    inner = FixedAnswers([], [])
    cfg = EvalConfig(batch_size=8)
    results = run_inspector(inner, boards[:2], cfg, templates_as_input=False)
    assert [tmpl for _, tmpl in inner.seen[0][1]] == [None] * 4
    assert [r.kind for r in results] == ["test", "test", "template", "template"]
    run_inspector(inner, boards[:2], cfg)
    assert [tmpl for _, tmpl in inner.seen[1][1]] == [b.template_path for b in boards[:2]] * 2


def test_evaluate_with_robustness_reports_every_perturbation(tiny_model, boards, tmp_path):
    cfg = tiny_cfg(tmp_path)
    cfg.eval.latency_samples = 1
    metrics = evaluate_model(tiny_model.model("quantize"), boards[:1], cfg, tmp_path / "out", "tiny",
                             robustness=True, templates_as_input=False)
    names = set(perturbations(cfg.eval))
    assert set(metrics["robustness"]) == names
    for m in metrics["robustness"].values():
        assert {"f1_iou33", "hallucination_rate", "template_false_alarm", "severity"} <= set(m)
        assert m["n_images"] == 1 and m["n_templates"] == 1
    line = json.loads(json_line(metrics))
    assert set(line["robustness"]) == names and "f1_iou33" in line
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(saved["robustness"]) == names and saved["settings"]["templates_as_input"] is False
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="robustness"' in html and "no-template mode" in html
    assert 'id="robustness"' not in render_html(evaluate(FixedAnswers([], []), boards[:1], cfg.eval, cfg.data.classes)[0],
                                                [], cfg.eval)
