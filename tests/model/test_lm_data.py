"""The scan the language model learns: it decides every region of the asked area as it would
for "all defects"; the answer keeps the asked class."""
from components.data.records import Box
from components.qa.generate import qa_from_json, qa_to_json, questions_for, scan_truth
from components.qa.grammar import Detection, Reading, resolve_scan
from components.train.lm_data import RegionView, decisions_for, scan_target

SIZE = (640, 640)
BOXES = [Box(10, 10, 40, 40, "short"), Box(100, 100, 130, 130, "spur"), Box(500, 500, 530, 530, "short")]
# The spatial branch names the first short a mousebite; the third region is a false alarm.
REGIONS = [Detection("mousebite", (10, 10, 40, 40), 0.8), Detection("spur", (100, 100, 130, 130), 0.9),
           Detection("open", (300, 300, 320, 320), 0.2), Detection("short", (500, 500, 530, 530), 0.9)]
VIEW = RegionView("unused.png", SIZE, REGIONS, {0: 0, 1: 1, 2: 3})


def _pair(reading: Reading):
    from components.qa.generate import QAPair, answer_of

    idx, ans = answer_of(BOXES, reading, SIZE)
    return QAPair("b", "test", "locate", "q", ans, idx, reading, scan_truth(BOXES, reading, SIZE))


def test_a_class_question_decides_every_region_and_the_answer_keeps_the_class():
    qa = _pair(Reading(("short",)))
    assert decisions_for(qa, VIEW) == ["short", "[YES]", "[NO]", "[YES]"]  # re-classified, spur decided too
    answer = resolve_scan(scan_target(qa, VIEW), REGIONS)
    assert [d.cls for d in answer.detections] == ["short", "short"]
    assert [d.box for d in answer.detections] == [(10, 10, 40, 40), (500, 500, 530, 530)]


def test_an_area_question_decides_only_its_area():
    qa = _pair(Reading(("short",), False, "tl"))
    assert decisions_for(qa, VIEW) == ["short", "[YES]", "[NO]", "[NO]"]
    assert [d.box for d in resolve_scan(scan_target(qa, VIEW), REGIONS).detections] == [(10, 10, 40, 40)]
    assert decisions_for(_pair(Reading(off=True)), VIEW) == ["[NO]"] * 4


def test_scan_truth_survives_the_qa_file():
    import random

    from tests.conftest import pcb_words

    for _kind, _q, _idx, _ans, reading in questions_for(BOXES, ("short", "spur", "open"), pcb_words(), random.Random(0), 1,
                                                        SIZE):
        qa = _pair(reading)
        assert qa_from_json(qa_to_json(qa), ("short", "spur", "open", "mousebite")).scan_truth == qa.scan_truth
