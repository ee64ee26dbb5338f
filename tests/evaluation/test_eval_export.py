"""DeepPCB result files: format, round trip, and a file-only score that agrees with metrics.py."""
import pytest

from components.config import EvalConfig
from components.data.records import Box, Sample
from components.evaluation.export import parse_line, read_export, score_export, write_export
from components.evaluation.metrics import compute_metrics
from components.model.answers import ImageResult
from components.qa.grammar import Answer, Detection

GT_A = Box(100, 100, 130, 130, "short")
GT_B = Box(300, 200, 340, 260, "pin-hole")


def sample(sid: str, boxes: list[Box]) -> Sample:
    return Sample(sid, "g", f"/nowhere/{sid}_test.jpg", f"/nowhere/{sid}_temp.jpg", boxes)


def res(s: Sample, dets: list[Detection], kind: str = "test") -> ImageResult:
    return ImageResult(s, kind, Answer(dets), 0.0)


def mixed() -> list[ImageResult]:
    """Two boards: one right, one shifted below IoU, one wrong class, one extra; one template alarm."""
    s1, s2 = sample("00041001", [GT_A, GT_B]), sample("00041002", [GT_A, GT_B])
    return [
        res(s1, [Detection("short", (100, 100, 130, 130), 0.92), Detection("pin-hole", (330, 200, 370, 260), 0.61)]),
        res(s2, [Detection("spur", (100, 100, 130, 130), 0.5), Detection("pin-hole", (300, 200, 340, 260), 0.875),
                 Detection("open", (0, 0, 20, 20), 0.125)]),
        res(s1, [Detection("copper", (10, 10, 40, 40), 0.33)], "template"),
        res(s2, [], "template"),
    ]


def test_line_format_and_empty_files(tmp_path):
    write_export(mixed(), tmp_path)
    assert (tmp_path / "00041001.txt").read_text().splitlines()[0] == "100,100,130,130,0.92,short"
    assert (tmp_path / "templates" / "00041002.txt").read_text() == ""


def test_round_trip(tmp_path):
    results = mixed()
    write_export(results, tmp_path)
    tests, temps = read_export(tmp_path), read_export(tmp_path, "template")
    assert tests == {r.sample.sample_id: r.answer.detections for r in results if r.kind == "test"}
    assert temps == {r.sample.sample_id: r.answer.detections for r in results if r.kind == "template"}


def test_score_export_agrees_with_metrics(tmp_path):
    results = mixed()
    write_export(results, tmp_path)
    samples = [r.sample for r in results if r.kind == "test"]
    scored = score_export(tmp_path, samples, iou=0.33)
    m = compute_metrics(results, EvalConfig())
    assert (scored["tp"], scored["n_pred"], scored["n_gt"]) == (2, 5, 4)
    assert scored["precision"] == pytest.approx(m["precision_iou33"]) == pytest.approx(0.4)
    assert scored["recall"] == pytest.approx(m["recall_iou33"]) == pytest.approx(0.5)
    assert scored["f1"] == pytest.approx(m["f1_iou33"])


def test_missing_file_and_bad_line_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        score_export(tmp_path, [sample("x", [GT_A])])
    with pytest.raises(ValueError, match="r.txt:3"):
        parse_line("1,2,3,short", "r.txt:3")
