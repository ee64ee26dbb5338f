"""Held-out wordings stay held out; the question normaliser mends what inspectors type."""
import itertools
import random

from components.config import CLASSES, QAConfig
from components.data.records import Box
from components.evaluation.questions import KINDS, all_wordings, suite
from components.model.tokenizer import normalize, vocabulary
from components.qa.generate import questions_for, reading_questions
from components.qa.vocab import AREAS, FRAMES, ITEM_WORDS, NON_DEFECTS, OUT_OF_SCOPE, PHRASINGS, for_line
from tests.conftest import pcb_words


def _generator_wordings(words=None, items=ITEM_WORDS) -> set[str]:
    """Every question the QA generator can write (its phrasings filled in every possible way, bare
    and inside every request frame), in a line's words and items (default: pcb's)."""
    names = [p for pairs in (words or pcb_words()).values() for p in pairs] + NON_DEFECTS
    plurals = [p for _, p in names]
    areas = [a for v in AREAS.values() for a in v]
    out = set(OUT_OF_SCOPE)
    for frames in PHRASINGS.values():
        for frame in frames:
            for (s, p), p2, a in itertools.product(names if "{s}" in frame or "{p}" in frame else [("", "")],
                                                   plurals if "{p2}" in frame else [""],
                                                   areas if "{a}" in frame else [""]):
                out.add(frame.format(s=s, p=p, p2=p2, a=a))
    out |= {f.format(q=q[0].lower() + q[1:]) for f in FRAMES for q in out}
    return {for_line(q, items) for q in out}


def _key(q: str) -> str:
    return normalize(q)


def _generated(boards) -> set[str]:
    """What the generator writes with the default config: on real boards and on many synthetic ones."""
    rng = random.Random(0)
    synthetic = [[Box(x, y, x + 30, y + 30, c) for x, y, c in zip(rng.sample(range(600), 3), rng.sample(range(600), 3),
                                                               rng.sample(CLASSES, 3), strict=True)] for _ in range(300)]
    cfg = QAConfig()
    out = set()
    for boxes in [s.boxes for s in boards] + synthetic + [[]] * 50:
        out.update(q for _, q, *_ in questions_for(boxes, CLASSES, pcb_words(), rng, 3, (640, 640), cfg.out_of_scope_share,
                                                    cfg.embellish_share))
    out.update(q for q, _ in reading_questions(CLASSES, pcb_words(), cfg, 5000, seed=0))  # what the warm-up reads alone
    return out


def test_no_heldout_wording_is_one_the_generator_writes(boards):
    generated = {_key(q) for q in _generator_wordings() | _generated(boards)}
    heldout = {_key(q) for q in all_wordings(CLASSES)}
    assert len(heldout) > 500 and len(generated) > 5000
    assert not heldout & generated, sorted(heldout & generated)[:5]


def test_no_heldout_wording_of_another_line_is_one_its_generator_writes():
    from components import config

    cfg = config.load(None, line="steel")
    classes, line = cfg.data.classes, cfg.line
    generated = _generator_wordings(line.words, line.items)
    generated |= {q for q, _ in reading_questions(classes, line.words, QAConfig(), 5000, 0, line.items)}
    heldout = {_key(q) for q in all_wordings(classes, line)}
    assert len(heldout) > 500 and "strip" in " ".join(heldout)
    assert not heldout & {_key(q) for q in generated}, sorted(heldout & {_key(q) for q in generated})[:5]


def test_the_generator_writes_its_phrasings_or_embellishes_them(boards):
    known = {_key(q) for q in _generator_wordings()}
    generated = _generated(boards)
    plain = [q for q in generated if _key(q) in known]
    assert 0.3 < len(plain) / len(generated) < 0.9  # embellish_share of them typed otherwise
    assert any(q.startswith(("hey,", "ok,", "please")) for q in generated)


def test_suite_asks_every_kind_deterministically():
    boxes = [Box(10, 10, 40, 40, "short"), Box(500, 500, 530, 540, "spur")]
    a, b = suite("b1", boxes, CLASSES), suite("b1", boxes, CLASSES)
    assert a == b and {q.kind for q in a} == set(KINDS)
    assert suite("b2", boxes, CLASSES) != a  # another board, other wordings
    present = {q.reading.classes[0] for q in a if q.kind == "locate"}
    assert "short" in present or "spur" in present and len(present) == 2


def test_normalize_mends_typos_and_contractions():
    words = set(vocabulary(CLASSES, pcb_words(), 16))
    assert normalize("Where's the SHROT?", words) == "where is the short ?"
    assert normalize("any mousebties", words) == "any mousebites"
    assert normalize("where is the short-circuit", words) == "where is the short circuit"
    assert normalize("any pinhloes?", words) == "any pinholes ?"
    assert normalize("zzzz spur", words) == "zzzz spur"  # nothing near: left alone, read as unknown
    assert normalize("pin-hole", words) == "pin hole"  # read as the common spelling
    assert normalize("lower-left part", words) == "lower left part"
