"""A line's class words reach its QA pairs, its tokenizer and its question normalisation; the pcb
line's are today's, so its QA pairs and vocabulary are byte for byte what they were."""
from __future__ import annotations

import hashlib
import json
import random

from components import config
from components.config import CLASSES, QAConfig
from components.data.records import Box, Sample
from components.model.tokenizer import build_tokenizer, normalize, vocabulary
from components.qa.generate import generate_preferences, generate_qa, pref_to_json, qa_from_json, qa_to_json
from tests.conftest import deeppcb_sizes, pcb_words

# components/qa/vocab.py's NAMES at commit 1bf7cad, before the words moved into lines/pcb.yaml.
FROZEN_NAMES = {
    "open": [("open circuit", "open circuits"), ("open", "opens"), ("break", "breaks"), ("broken trace", "broken traces"),
             ("broken track", "broken tracks"), ("trace break", "trace breaks"), ("open trace", "open traces")],
    "short": [("short circuit", "short circuits"), ("short", "shorts"), ("bridge", "bridges"),
              ("solder bridge", "solder bridges"), ("shorted trace", "shorted traces"), ("copper bridge", "copper bridges")],
    "mousebite": [("mouse bite", "mouse bites"), ("mousebite", "mousebites"), ("bite", "bites"),
                  ("nibble", "nibbles"), ("edge nick", "edge nicks"), ("notch", "notches")],
    "spur": [("spur", "spurs"), ("copper spur", "copper spurs"), ("protrusion", "protrusions"), ("burr", "burrs")],
    "copper": [("spurious copper", "spurious copper spots"), ("copper splash", "copper splashes"),
               ("stray copper", "stray copper spots"), ("copper residue", "copper residues"),
               ("extra copper", "extra copper spots"), ("copper blob", "copper blobs")],
    "pin-hole": [("pin-hole", "pin-holes"), ("pinhole", "pinholes"), ("pin hole", "pin holes"), ("void", "voids"),
                 ("tiny hole", "tiny holes")],
}
# sha256 of the JSON lines (json.dumps per row + "\n") of qa_to_json / pref_to_json and of the
# vocabulary list, computed at commit 1bf7cad (generate_qa(boards, QAConfig(phrasings_per_kind=3),
# CLASSES), generate_preferences with the same config, vocabulary(CLASSES, 16)) on the `boards`
# fixture: the first 4 boards of group00041 and 2 of group13000 of the bundled DeepPCB data;
# qa and vocabulary again at 2f828c5, whose only change to them is the 24 everyday requests added
# to OUT_OF_SCOPE (with the list cut back to its first 25 the 1bf7cad values come out again).
BEFORE = {
    "qa": "cab2e88649c0266396a9a8ce92099295f4964481704eb1352bd81eb731129827",
    "preferences": "e9ec2cb0cd7f8022f5ca9e85cd1ad8fbde34c5b947cc9f1d22dca4f0704d1fbd",
    "vocabulary": "39a2ea7f9de8b9c6d41786607f5b64e375b142bab728bbe27f62345f7724bc09",
}
STEEL_SIZE = (200, 200)
PLAIN = QAConfig(phrasings_per_kind=3, embellish_share=0.0)
"""No embellishment: a filler phrase may land inside a two-word name, and this looks for names."""


def _sha(rows) -> str:
    return hashlib.sha256("".join(json.dumps(r) + "\n" for r in rows).encode()).hexdigest()


def test_the_pcb_words_are_todays_names():
    assert pcb_words() == {c: tuple(pairs) for c, pairs in FROZEN_NAMES.items()}
    assert list(pcb_words()) == list(CLASSES)


def test_pcb_qa_preferences_and_vocabulary_are_byte_identical(boards):
    cfg, sizes = QAConfig(phrasings_per_kind=3), deeppcb_sizes(boards)
    pairs = generate_qa(boards, cfg, CLASSES, pcb_words(), sizes)
    prefs = generate_preferences(pairs, cfg, CLASSES, sizes)
    assert _sha([qa_to_json(p) for p in pairs]) == BEFORE["qa"]
    assert _sha([pref_to_json(p) for p in prefs]) == BEFORE["preferences"]
    assert _sha(vocabulary(CLASSES, pcb_words(), 16)) == BEFORE["vocabulary"]


def _steel_boards(classes: tuple[str, ...], n: int = 30) -> list[Sample]:
    """Synthetic steel crops (boxes only: the generator reads no pixels), two or three defects each."""
    rng = random.Random(0)
    out = []
    for i in range(n):
        boxes = [Box(x, y, x + 30, y + 30, c) for x, y, c in zip(rng.sample(range(160), 3), rng.sample(range(160), 3),
                                                               rng.sample(classes, 3), strict=True)]
        out.append(Sample(f"steel{i}", "strip", f"steel{i}.jpg", None, boxes[: rng.randint(2, 3)]))
    return out


def test_steel_class_words_reach_steel_qa_pairs():
    cfg = config.load(None, line="steel")
    classes, words = cfg.data.classes, cfg.line.words
    boards = _steel_boards(classes)
    pairs = generate_qa(boards, PLAIN, classes, words, dict.fromkeys((b.sample_id for b in boards), STEEL_SIZE))
    asked = [p for p in pairs if p.kind in ("locate", "exists", "count_class", "spatial_class")]
    for p in asked:
        (cls,) = p.reading.classes
        assert any(name in p.question.lower() for pair in words[cls] for name in pair), (cls, p.question)
    assert {p.reading.classes[0] for p in asked} == set(classes)
    said = " ".join(p.question.lower() for p in pairs)
    assert "crack" in said and "scratch" in said and "pitted surface" in said
    assert not any(name in said for pairs_ in FROZEN_NAMES.values() for pair in pairs_ for name in pair
                   if len(name) > 4)  # no PCB class word ("short circuit", "mouse bite", ...)
    for p in pairs:
        assert qa_from_json(qa_to_json(p), classes).text == p.text  # answers in steel's classes parse back


def test_the_steel_tokenizer_and_normaliser_read_steel_words():
    cfg = config.load(None, line="steel")
    classes, words = cfg.data.classes, cfg.line.words
    steel, pcb = set(vocabulary(classes, words, 16)), set(vocabulary(CLASSES, pcb_words(), 16))
    assert {"crazing", "cracks", "pitted", "rolled-in", "non-metallic", "scratches", "pockmarks"} <= steel - pcb
    assert {"mousebite", "pinholes", "spurs"} <= pcb - steel
    assert normalize("Where are the crakcs?", steel) == "where are the cracks ?"
    assert normalize("any scrathces here", steel) == "any scratches here"
    assert normalize("how many pittted surfaces", steel) == "how many pitted surfaces"
    assert normalize("Where are the crakcs?", pcb) == "where are the crakcs ?"  # not a pcb word
    tok = build_tokenizer(classes, words, 16, chat_template="")
    boards = _steel_boards(classes, 10)
    pairs = generate_qa(boards, PLAIN, classes, words, dict.fromkeys((b.sample_id for b in boards), STEEL_SIZE))
    for p in pairs:
        ids = tok(normalize(p.question, steel))["input_ids"]
        assert tok.unk_token_id not in ids, p.question


def test_a_line_asks_and_answers_in_its_own_words_and_items():
    from components.evaluation.questions import all_wordings, suite
    from components.qa.grammar import Answer, Detection
    from components.qa.sentence import sentence

    cfg = config.load(None, line="steel")
    classes, words, line = cfg.data.classes, cfg.line.words, cfg.line
    boards = _steel_boards(classes)
    pairs = generate_qa(boards, PLAIN, classes, words, dict.fromkeys((b.sample_id for b in boards), STEEL_SIZE),
                        line.items)
    said = " ".join(p.question.lower() for p in pairs).split()
    assert "strip" in said and not {"board", "pcb", "panel"} & set(said)
    asked = [q.question.lower() for b in boards for q in suite(b.sample_id, b.boxes, classes, 0, line)]
    assert any("scratch" in q or "crazed" in q for q in asked)
    assert not any(w in q.split() for q in asked for w in ("board", "pcb", "panel", "shrot", "spurr"))
    steel = set(vocabulary(classes, words, 16, items=line.items))
    assert {"strip", "sheet", "surface"} <= steel
    assert any("strip" in q.split() for q in all_wordings(classes, line))
    off = sentence(Answer(out_of_scope=True), words, line.items)
    assert "on this strip" in off and "scratches" in off
    found = sentence(Answer([Detection("rolled-in_scale", (1, 2, 30, 40), 0.8)]), words, line.items)
    assert found.startswith("One rolled-in scale, at (16, 21)")


def test_the_pcb_line_items_change_no_pcb_question():
    from components.qa.vocab import ITEM_WORDS, for_line

    assert config.load(None).line.items == ITEM_WORDS
    assert for_line("Is this Board ok? the pcb", ("strip", "sheet")) == "Is this Strip ok? the sheet"
    assert for_line("Is this Board ok?", ITEM_WORDS) == "Is this Board ok?"
