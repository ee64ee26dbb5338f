"""The parser reads back every answer the generator writes, and refuses malformed text."""
import pytest

from components.config import CLASSES, QAConfig
from components.qa.generate import generate_preferences, generate_qa
from components.qa.grammar import Detection, GrammarError, Reading, parse, read_scan, render, resolve_scan, to_scan
from tests.conftest import deeppcb_sizes, pcb_words


def test_every_generated_answer_parses_back(boards):
    sizes = deeppcb_sizes(boards)
    pairs = generate_qa(boards, QAConfig(phrasings_per_kind=3), CLASSES, pcb_words(), sizes)
    prefs = generate_preferences(pairs, QAConfig(), CLASSES, sizes)
    assert {p.kind for p in pairs} == {"locate", "exists", "count_class", "count_total", "describe", "spatial",
                                       "spatial_class", "multi", "out_of_scope"}
    assert any(p.answer.out_of_scope for p in pairs) and any(len(p.reading.classes) == 2 for p in pairs)
    assert any(p.source == "template" for p in pairs) and any(p.answer.none_found for p in pairs)
    for answer in [p.answer for p in pairs] + [p.rejected for p in prefs]:
        text = render(answer)
        back = parse(text)
        assert render(back) == text
        assert [d.box for d in back.detections] == [d.box for d in answer.detections]
        assert back.count == answer.count and back.out_of_scope == answer.out_of_scope


def test_generation_is_deterministic(boards):
    a = [p.question + p.text for p in generate_qa(boards, QAConfig(seed=3), CLASSES, pcb_words(), deeppcb_sizes(boards))]
    b = [p.question + p.text for p in generate_qa(boards, QAConfig(seed=3), CLASSES, pcb_words(), deeppcb_sizes(boards))]
    assert a == b


def test_rejected_answers_are_wrong(boards):
    sizes = deeppcb_sizes(boards)
    pairs = generate_qa(boards, QAConfig(), CLASSES, pcb_words(), sizes)
    for p in generate_preferences(pairs, QAConfig(), CLASSES, sizes):
        assert render(p.rejected) != p.qa.text, p.reason


@pytest.mark.parametrize("text", [
    "[DEFECT] short [BOX] 1,2,3 [CENTER] 2:2 [CONF] 0.5 [EOF]",       # box with three numbers
    "[DEFECT] scratch [BOX] 1,2,3,4 [CENTER] 2:3 [CONF] 0.5 [EOF]",   # unknown class
    "[DEFECT] short [BOX] 5,2,3,4 [CENTER] 4:3 [CONF] 0.5 [EOF]",     # inverted box
    "[DEFECT] short [BOX] 1,2,3,4 [CENTER] 2:3 [CONF] 1.5 [EOF]",     # confidence above 1
    "[COUNT] 2 [DEFECT] short [BOX] 1,2,3,4 [CENTER] 2:3 [CONF] 0.5 [EOF]",  # count disagrees
    "[NONE] [EOF] extra",
    "",
])
def test_malformed_answers_are_refused(text):
    with pytest.raises(GrammarError):
        parse(text)


def test_scan_form_resolves_to_region_boxes():
    regions = [Detection("spur", (10, 10, 30, 30), 0.9), Detection("short", (100, 50, 140, 90), 0.7)]
    descs = [["R1", "tl", "spur", "[OUT]", "s9"], ["R2", "tl", "short", "[IN]", "s7"]]
    text = to_scan(Reading(("short",), True), descs, ["[NO]", "short"])
    assert text == "[ASK] short [-] count any R1 tl spur [OUT] s9 [NO] R2 tl short [IN] s7 short [EOF]"
    back = resolve_scan(text, regions)
    assert back.detections == [Detection("short", (100, 50, 140, 90), 0.7)] and back.count == 1
    assert back.asked == Reading(("short",), True)
    none = resolve_scan(to_scan(Reading(("spur", "open")), descs, ["[NO]", "[NO]"]), regions)
    assert none.none_found and render(none) == "[NONE] spur open [EOF]" and parse(render(none)).none_class == "spur open"
    off = resolve_scan(to_scan(Reading(off=True), descs, ["[NO]", "[NO]"]), regions)
    assert off.out_of_scope and not off.none_found and render(off) == "[OFF] [EOF]"
    assert read_scan("[ASK] all [-] list tl [EOF]") == Reading((), False, "tl")
    # The scan decides every region (here both defects); the answer keeps the asked class.
    both = to_scan(Reading(("short",)), [d[:3] + ["[IN]"] + d[4:] for d in descs], ["[YES]", "short"])
    assert resolve_scan(both, regions).detections == [Detection("short", (100, 50, 140, 90), 0.7)]
    assert len(resolve_scan(both.replace("[ASK] short", "[ASK] all"), regions).detections) == 2
    with pytest.raises(GrammarError):
        resolve_scan("[ASK] short [-] list any R2 tl short [IN] s7 short [EOF]", regions)  # regions out of order
    with pytest.raises(GrammarError):
        read_scan("[ASK] all short list any [EOF]")  # 'all' and a class


def test_reading_covers_class_and_area():
    size = (640, 640)
    assert Reading(("short",)).covers("short", (600, 600), size)
    assert not Reading(("short",)).covers("spur", (600, 600), size)
    assert Reading((), False, "tl").covers("spur", (100, 100), size)
    assert not Reading((), False, "tl").covers("spur", (400, 100), size)
    assert Reading((), False, "centre").covers("open", (320, 320), size)
    assert not Reading((), False, "centre").covers("open", (20, 320), size)
    assert not Reading(off=True).covers("open", (320, 320), size)
    # What the scan decides on is the area alone, whatever class is asked.
    tl = Reading(("short",), False, "tl")
    assert tl.scans((100, 100), size) and not tl.scans((400, 100), size)
    assert not Reading(off=True).scans((320, 320), size)


def test_the_words_generation_wraps_around_questions_say_nothing_of_what_is_asked():
    """Leads and filler phrases must not use a word that names an area or a class: "right,"
    as a lead once made "top right" read as "top"."""
    from components.line import read_line
    from components.model.tokenizer import words_of
    from components.qa.vocab import AREAS, FILLER, FILLER_PHRASES, LEADS

    generic = set(FILLER)  # everyday words ("of", "the", "board") that area names also use
    telling = {w for names in AREAS.values() for a in names for w in words_of(a.replace("-", " "))} - generic
    names = {w for line in ("pcb", "steel") for pairs in read_line(line).line.words.values() for pair in pairs
             for n in pair for w in words_of(n)}
    telling |= names - generic
    inserted = {w for text in (*LEADS, *FILLER_PHRASES) for w in words_of(text)}
    assert "right" in telling and not inserted & telling, inserted & telling
