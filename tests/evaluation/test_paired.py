"""The paired comparison: per-board sums give back every gated figure, and the bootstrap of
candidate - champion is zero for the same answers and sees a real difference."""
import math
import random

import pytest

from components.config import CLASSES, EvalConfig
from components.data.records import Box, Sample
from components.evaluation import paired
from components.evaluation.metrics import compute_metrics
from components.evaluation.questions import Asked, score, suite, truth_of
from components.model.answers import ImageResult
from components.qa.grammar import Answer, Detection, answer_for
from components.registry.gate import PAIRED

CFG = EvalConfig()
SIZE = (640, 640)


def _boards(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        boxes = [Box(x, y, x + 30, y + 30, rng.choice(CLASSES)) for x, y in
                 zip(rng.sample(range(0, 600, 40), 3), rng.sample(range(0, 600, 40), 3), strict=True)][: rng.randint(1, 3)]
        out.append(Sample(f"b{i}", "g", f"/nowhere/b{i}_test.jpg", f"/nowhere/b{i}_temp.jpg", boxes))
    return out


def _answers(boards, miss: float, seed: int):
    """Describe-all results and suite answers of a model that misses a share `miss` of the boxes."""
    rng = random.Random(seed)
    results, asked = [], []
    for s in boards:
        kept = [b for b in s.boxes if rng.random() >= miss]
        dets = [Detection(b.cls, (b.x1 + 2, b.y1, b.x2 + 2, b.y2), 0.9) for b in kept]
        results += [ImageResult(s, "test", Answer(dets)), ImageResult(s, "template", Answer([]))]
        for q in suite(s.sample_id, s.boxes, CLASSES):
            truth = truth_of(q, s.boxes, SIZE)
            seen = [Detection(b.cls, (b.x1 + 2, b.y1, b.x2 + 2, b.y2), 0.9) for b in truth if b in kept]
            asked.append(Asked(s.sample_id, "test", q, answer_for(q.reading, seen), truth))
    return results, asked


def test_board_sums_give_back_every_gated_figure():
    results, asked = _answers(_boards(30), miss=0.2, seed=1)
    summed = {}
    for st in paired.board_stats(results, asked, CFG.iou).values():
        for k, v in st.items():
            summed[k] = summed.get(k, 0.0) + v
    got = paired.figures(summed)
    want = {**compute_metrics(results, CFG), **score(asked, CFG.iou)}
    for m in PAIRED:
        assert got[m] == pytest.approx(want[m], nan_ok=True), m


def test_same_answers_differ_by_nothing_and_a_worse_model_is_seen():
    boards = _boards(60)
    good = paired.board_stats(*_answers(boards, miss=0.0, seed=1), CFG.iou)
    worse = paired.board_stats(*_answers(boards, miss=0.3, seed=2), CFG.iou)
    same = paired.bootstrap(good, good, list(PAIRED), 200, 0, 0.9)
    assert all(v == (0.0, 0.0, 0.0) for m, v in same.items() if math.isfinite(v[0]))
    diff, lo, hi = paired.bootstrap(worse, good, ["f1_iou33"], 500, 0, 0.9)["f1_iou33"]
    assert lo <= diff <= hi < 0  # clearly worse: the whole interval below zero


def test_saved_sums_load_back_and_a_missing_file_says_what_to_do(tmp_path):
    stats = paired.board_stats(*_answers(_boards(3), 0.0, 0), CFG.iou)
    paired.save(stats, tmp_path / paired.BOARDS)
    assert paired.load(tmp_path / paired.BOARDS) == stats
    with pytest.raises(FileNotFoundError, match="evaluate the model again"):
        paired.load(tmp_path / "nothing.json")
