"""Held-out wordings stay held out; the question normaliser mends what inspectors type."""
import itertools
import random

from components.config import CLASSES
from components.data.records import Box
from components.evaluation.questions import KINDS, all_wordings, suite
from components.model.tokenizer import normalize, vocabulary
from components.qa.generate import questions_for
from components.qa.vocab import AREAS, NAMES, OUT_OF_SCOPE, PHRASINGS


def _generator_wordings() -> set[str]:
    """Every question the QA generator can write (its phrasings filled in every possible way)."""
    names = [p for pairs in NAMES.values() for p in pairs]
    plurals = [p for _, p in names]
    areas = [a for v in AREAS.values() for a in v]
    out = set(OUT_OF_SCOPE)
    for frames in PHRASINGS.values():
        for frame in frames:
            for (s, p), p2, a in itertools.product(names if "{s}" in frame or "{p}" in frame else [("", "")],
                                                   plurals if "{p2}" in frame else [""],
                                                   areas if "{a}" in frame else [""]):
                out.add(frame.format(s=s, p=p, p2=p2, a=a))
    return out


def _key(q: str) -> str:
    return normalize(q)


def test_no_heldout_wording_is_one_the_generator_writes():
    generated = {_key(q) for q in _generator_wordings()}
    heldout = {_key(q) for q in all_wordings(CLASSES)}
    assert len(heldout) > 500
    assert not heldout & generated, sorted(heldout & generated)[:5]


def test_the_generator_writes_only_questions_from_its_phrasings(boards):
    rng = random.Random(0)
    known = {_key(q) for q in _generator_wordings()}
    for s in boards:
        for _, q, *_ in questions_for(s.boxes, CLASSES, rng, 3, (640, 640)):
            assert _key(q) in known, q


def test_suite_asks_every_kind_deterministically():
    boxes = [Box(10, 10, 40, 40, "short"), Box(500, 500, 530, 540, "spur")]
    a, b = suite("b1", boxes, CLASSES), suite("b1", boxes, CLASSES)
    assert a == b and {q.kind for q in a} == set(KINDS)
    assert suite("b2", boxes, CLASSES) != a  # another board, other wordings
    present = {q.reading.classes[0] for q in a if q.kind == "locate"}
    assert "short" in present or "spur" in present and len(present) == 2


def test_normalize_mends_typos_and_contractions():
    words = set(vocabulary(CLASSES, 16))
    assert normalize("Where's the SHROT?", words) == "where is the short ?"
    assert normalize("any mousebties", words) == "any mousebites"
    assert normalize("where is the short-circuit", words) == "where is the short circuit"
    assert normalize("any pinhloes?", words) == "any pinholes ?"
    assert normalize("zzzz spur", words) == "zzzz spur"  # nothing near: left alone, read as unknown
    assert normalize("pin-hole", words) == "pin-hole"  # a known hyphenated word stays whole
