"""The question suite evaluation asks of every board: each kind an inspector asks, in wordings
training never sees (heldout_questions.yaml), scored against the boxes that answer it.

Per image, deterministic in its id: locate, exists and count for a class on the board and
for one that is not, the count of all, describe all, each quadrant and one more area, a
question about two classes, and one question that is not about defects.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from components.data.records import Box
from components.line import LineConfig
from components.qa.generate import asked_boxes, reading_to_json
from components.qa.grammar import Answer, Reading
from components.qa.vocab import ANY_AREA, AREAS, QUADRANTS, first_name, for_line

HELDOUT = Path(__file__).with_name("heldout_questions.yaml")
CLASS_KINDS = ("locate", "exists", "count_class")
COUNT_KINDS = ("count_class", "count_total")
KINDS = (*CLASS_KINDS, "count_total", "describe", "spatial", "multi", "out_of_scope")
"""Every kind the suite asks, in report order."""
FIGURES = (*(f"answer_f1_{k}" for k in KINDS if k != "out_of_scope"), *(f"count_exact_{k}" for k in COUNT_KINDS),
           "false_none_rate", "false_present_rate", "question_read_accuracy", "out_of_scope_taken_rate",
           "in_scope_declined_rate")
"""The suite's figures (what `score` returns but n_questions), in report order."""


@dataclass(frozen=True)
class SuiteQuestion:
    kind: str
    question: str
    reading: Reading
    """What the question asks: the truth the model's reading is scored against."""


@cache
def heldout() -> dict:
    """The held-out wordings: {areas, phrasings} (the class names are the line's)."""
    import yaml

    return yaml.safe_load(HELDOUT.read_text())


def names_of(cls: str, line: LineConfig) -> list[tuple[str, str]]:
    """The (singular, plural) names evaluation asks about a class in: the line's held-out ones,
    else the first of its training words."""
    return list(line.heldout_words.get(cls) or [first_name(cls, line.words)])


def _ask(rng: random.Random, kind: str, reading: Reading, line: LineConfig) -> SuiteQuestion:
    s, p = rng.choice(names_of(reading.classes[0], line)) if reading.classes else ("", "")
    p2 = rng.choice(names_of(reading.classes[1], line))[1] if len(reading.classes) > 1 else ""
    a = rng.choice(heldout()["areas"][reading.area]) if reading.area in AREAS else ""
    text = rng.choice(heldout()["phrasings"][kind]).format(s=s, p=p, p2=p2, a=a)
    return SuiteQuestion(kind, for_line(text, line.items), reading)


def suite(image_id: str, boxes: list[Box], classes: tuple[str, ...], seed: int = 0,
          line: LineConfig | None = None) -> list[SuiteQuestion]:
    """The questions asked about one image (boxes: its ground truth; none for a template), in
    the held-out wordings of `line` (default: the default line's)."""
    line = line or LineConfig()
    rng = random.Random(f"{seed}:{image_id}")
    present = sorted({b.cls for b in boxes})
    absent = [c for c in classes if c not in present]
    out = []
    for kind in CLASS_KINDS:
        for pool in (present, absent):
            if pool:
                out.append(_ask(rng, kind, Reading((rng.choice(pool),), kind == "count_class"), line))
    out.append(_ask(rng, "count_total", Reading((), True), line))
    out.append(_ask(rng, "describe", Reading(), line))
    more = rng.choice([a for a in AREAS if a not in QUADRANTS])
    out += [_ask(rng, "spatial", Reading((), False, area), line) for area in (*QUADRANTS, more)]
    first = rng.choice(present or list(classes))
    out.append(_ask(rng, "multi", Reading((first, rng.choice([c for c in classes if c != first]))), line))
    out.append(_ask(rng, "out_of_scope", Reading(off=True), line))
    return out


def every_question(classes: tuple[str, ...], line: LineConfig | None = None) -> list[SuiteQuestion]:
    """Every question the held-out file can make in `line`'s names (default: the default
    line's), each with its reading (a second class is the next one in `classes`)."""
    line = line or LineConfig()
    h = heldout()
    out = []
    for kind, frames in h["phrasings"].items():
        for frame in frames:
            for cls in (classes if "{s}" in frame or "{p}" in frame else ("",)):
                second = classes[(classes.index(cls) + 1) % len(classes)] if "{p2}" in frame else ""
                for s, p in (names_of(cls, line) if cls else [("", "")]):
                    for _, p2 in (names_of(second, line) if second else [("", "")]):
                        for area, a in ([(k, a) for k, v in h["areas"].items() for a in v] if "{a}" in frame else [("", "")]):
                            topic = tuple(c for c in (cls, second) if c)
                            reading = (Reading(off=True) if kind == "out_of_scope"
                                       else Reading(topic, kind in COUNT_KINDS, area or ANY_AREA))
                            text = for_line(frame.format(s=s, p=p, p2=p2, a=a), line.items)
                            out.append(SuiteQuestion(kind, text, reading))
    return out


def all_wordings(classes: tuple[str, ...], line: LineConfig | None = None) -> set[str]:
    """Every question the held-out file can make (for the no-overlap test)."""
    return {q.question for q in every_question(classes, line)}


@dataclass
class Asked:
    """One suite question about one image and the model's answer to it."""
    image_id: str
    source: str
    """'test' or 'template'."""
    question: SuiteQuestion
    answer: Answer
    truth: list[Box]
    """The image's boxes that answer the question."""
    answer_text: str = ""
    latency_s: float = 0.0


def truth_of(q: SuiteQuestion, boxes: list[Box], size: tuple[int, int]) -> list[Box]:
    return [] if q.reading.off else [boxes[i] for i in asked_boxes(boxes, q.reading, size)]


def same_reading(a: Reading | None, b: Reading) -> bool:
    """Whether the model read the question as asked (classes as a set)."""
    if a is None:
        return False
    if a.off or b.off:
        return a.off == b.off
    return set(a.classes) == set(b.classes) and a.count == b.count and a.area == b.area


def to_json(a: Asked) -> dict:
    """One line of questions.jsonl: enough to score the answer independently."""
    read = a.answer.asked
    return {"image_id": a.image_id, "source": a.source, "kind": a.question.kind, "question": a.question.question,
            "asked": reading_to_json(a.question.reading), "read": None if read is None else reading_to_json(read),
            "answer_text": a.answer_text, "out_of_scope": a.answer.out_of_scope,
            "detections": [d.to_dict() for d in a.answer.detections],
            "truth": [{"class": b.cls, "box": [b.x1, b.y1, b.x2, b.y2]} for b in a.truth]}


def score(asked: list[Asked], iou: float) -> dict[str, float]:
    """Per kind answer F1 (same class, IoU >= iou, against the boxes the question asks for) and
    count exactness; overall false-none, false-present and reading accuracies."""
    from components.evaluation.metrics import prf, share
    from components.model.answers import match

    out: dict[str, float] = {}
    for kind in KINDS:
        rows = [a for a in asked if a.question.kind == kind]
        if not rows or kind == "out_of_scope":
            continue
        tp = sum(len(match(a.answer.detections, a.truth, iou)) for a in rows)
        out[f"answer_f1_{kind}"] = prf(tp, sum(len(a.answer.detections) for a in rows), sum(len(a.truth) for a in rows))["f1"]
        if kind in COUNT_KINDS:
            out[f"count_exact_{kind}"] = share([len(a.answer.detections) == len(a.truth) for a in rows])
    scoped = [a for a in asked if not a.question.reading.off]
    off = [a for a in asked if a.question.reading.off]
    out["false_none_rate"] = share([not a.answer.detections for a in scoped if a.truth])
    out["false_present_rate"] = share([bool(a.answer.detections) for a in scoped if not a.truth])
    out["question_read_accuracy"] = share([same_reading(a.answer.asked, a.question.reading) for a in asked])
    out["out_of_scope_taken_rate"] = share([not a.answer.out_of_scope for a in off])
    out["in_scope_declined_rate"] = share([a.answer.out_of_scope for a in scoped])
    out["n_questions"] = len(asked)
    return out
