"""Question-answer pairs and DPO preference pairs from each image's boxes.

Deterministic for a given seed. Answers are ground truth in the answer grammar
(confidence 1.00); templates (defect-free) give 'none found' answers.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from components.config import QAConfig
from components.data.records import Box, Sample
from components.line import Words
from components.qa.grammar import Answer, Detection, Reading, answer_for, render
from components.qa.vocab import (
    AREAS,
    COUNT_WORDS,
    FILLER_PHRASES,
    FRAMES,
    ITEM_WORDS,
    LEADS,
    NON_DEFECT_KINDS,
    NON_DEFECTS,
    OUT_OF_SCOPE,
    PHRASINGS,
    for_line,
    own_name,
    reading_order,
)

Sizes = dict[str, tuple[int, int]]
"""sample_id -> (width, height) of its image, in pixels: the frame areas and boxes are judged in."""


@dataclass
class QAPair:
    sample_id: str
    source: str
    """'test' (board under test) or 'template' (its defect-free template)."""
    kind: str
    question: str
    answer: Answer
    gt_index: list[int] = field(default_factory=list)
    """Index into sample.boxes of each answer detection, in answer order."""
    reading: Reading = field(default_factory=Reading)
    """What the question asks (classes, count or list, area, or not about defects)."""
    scan_truth: list[tuple[int, str]] = field(default_factory=list)
    """(index into sample.boxes, class) of every defect the scan decides as one: those in the
    asked area, of any class (`Reading.scans`); the answer is the asked classes among them."""

    @property
    def text(self) -> str:
        return render(self.answer)


@dataclass
class PreferencePair:
    qa: QAPair
    rejected: Answer
    rejected_index: list[int | None]
    """For each rejected detection, the true box it points at, or None if invented."""
    reason: str
    """wrong_location | invented | missed | overconfident_wrong."""


def _det(b: Box) -> Detection:
    return Detection(b.cls, (round(b.x1), round(b.y1), round(b.x2), round(b.y2)), 1.0)


def asked_boxes(boxes: list[Box], reading: Reading, size: tuple[int, int]) -> list[int]:
    """Indices of the boxes that answer the reading, in reading order."""
    return [i for i in reading_order(boxes) if reading.covers(boxes[i].cls, boxes[i].center, size)]


def answer_of(boxes: list[Box], reading: Reading, size: tuple[int, int]) -> tuple[list[int], Answer]:
    """(gt indices, the true answer) of a reading on an image's boxes."""
    keep = [] if reading.off else asked_boxes(boxes, reading, size)
    return keep, answer_for(reading, [_det(boxes[i]) for i in keep])


def class_words(cls: str, words: Words, rng: random.Random) -> tuple[str, str]:
    """A (singular, plural) name of a class from its line's words; a class with none is called by itself."""
    return rng.choice(words[cls]) if cls in words else own_name(cls)


def phrase(rng: random.Random, kind: str, words: Words, cls: str = "", cls2: str = "", area: str = "") -> str:
    s, p = class_words(cls, words, rng) if cls else ("", "")
    p2 = class_words(cls2, words, rng)[1] if cls2 else ""
    a = rng.choice(AREAS[area]) if area else ""
    return rng.choice(PHRASINGS[kind]).format(s=s, p=p, p2=p2, a=a)


def embellish(question: str, rng: random.Random) -> str:
    """The question as people also type it: a lead ("hey,") or a request around it ("can you tell
    me ..."), a filler phrase put in before its last word or at its end ("... in this image ?"),
    lower case, no question mark; one or two of these."""
    words = question.rstrip("?.!").split()
    end = question[len(question.rstrip("?.!")):]
    for op in rng.sample(["lead", "frame", "filler", "lower", "bare"], rng.randint(1, 2)):
        if op == "frame":
            words = rng.choice(FRAMES).format(q=" ".join([words[0].lower()] + words[1:])).split()
        elif op == "lead":
            words = rng.choice(LEADS).split() + [words[0].lower()] + words[1:]
        elif op == "filler":
            at = rng.choice([len(words), len(words), max(1, len(words) - 1)])
            words = words[:at] + rng.choice(FILLER_PHRASES).split() + words[at:]
        elif op == "lower":
            words = [w.lower() for w in words]
        else:
            end = ""
    return " ".join(words) + end


def asks_count(question: str) -> bool:
    q = question.lower()
    return any(w in q for w in COUNT_WORDS)


def _one(kind: str, rng: random.Random, words: Words, cls: str, other: str, area: str) -> tuple[str, Reading]:
    """A question of one kind and what it asks."""
    if kind in ("locate", "exists", "count_class"):
        return phrase(rng, kind, words, cls), Reading((cls,), kind == "count_class")
    if kind in ("count_total", "describe"):
        return phrase(rng, kind, words), Reading((), kind == "count_total")
    if kind == "spatial":
        return phrase(rng, kind, words, area=area), Reading((), False, area)
    if kind == "spatial_class":
        q = phrase(rng, kind, words, cls, area=area)
        return q, Reading((cls,), asks_count(q), area)
    q = phrase(rng, "multi", words, cls, other)
    return q, Reading((cls, other), asks_count(q))


def questions_for(boxes: list[Box], classes: tuple[str, ...], words: Words, rng: random.Random, per_kind: int,
                  size: tuple[int, int], out_of_scope_share: float = 0.5,
                  embellish_share: float = 0.0) -> list[tuple[str, str, list[int], Answer, Reading]]:
    """(kind, question, gt indices, answer, reading) for one image's boxes (none for a template),
    classes named by the line's words; a share embellish_share of the questions are embellished
    (see `embellish`)."""
    return [(kind, embellish(q, rng) if rng.random() < embellish_share else q, *rest)
            for kind, q, *rest in _plain_questions(boxes, classes, words, rng, per_kind, size, out_of_scope_share)]


def _plain_questions(boxes, classes, words, rng, per_kind, size, out_of_scope_share):
    """questions_for before embellishment: per round, one question of each kind, then maybe one off-topic."""
    present = sorted({b.cls for b in boxes})
    out = []
    for _ in range(per_kind):
        # Ask about a present class most of the time, an absent one otherwise (negatives).
        cls = rng.choice(present) if present and rng.random() < 0.7 else rng.choice(classes)
        other = rng.choice([c for c in classes if c != cls] or [cls])
        area = rng.choice(list(AREAS))
        for kind in PHRASINGS:
            q, reading = _one(kind, rng, words, cls, other, area)
            out.append((kind, q, *answer_of(boxes, reading, size), reading))
        if rng.random() < out_of_scope_share:
            reading = Reading(off=True)
            out.append(("out_of_scope", off_topic(rng), *answer_of(boxes, reading, size), reading))
    return out


def reading_questions(classes: tuple[str, ...], words: Words, cfg: QAConfig, n: int, seed: int,
                      items: tuple[str, ...] = ITEM_WORDS) -> list[tuple[str, Reading]]:
    """n questions (each kind in turn, embellished as the QA pairs are) with what they ask, and
    no board: for learning to read questions (train/warmup.py); the thing inspected called by
    the line's `items`."""
    rng = random.Random(f"reading:{seed}")
    out: list[tuple[str, Reading]] = []
    while len(out) < n:
        out += [(for_line(q, items), reading) for _, q, _, _, reading in
                questions_for([], classes, words, rng, 1, (1, 1), cfg.out_of_scope_share, cfg.embellish_share)]
    return out[:n]


NON_DEFECT_SHARE = 0.5
"""Share of out-of-scope training questions asked about NON_DEFECTS rather than everyday things."""


def off_topic(rng: random.Random) -> str:
    """A question not about defects: an everyday one, or half the time one about a thing on the
    board that is no defect, in a defect question's frame ("Where are the resistors?")."""
    if rng.random() >= NON_DEFECT_SHARE:
        return rng.choice(OUT_OF_SCOPE)
    s, p = rng.choice(NON_DEFECTS)
    return rng.choice(PHRASINGS[rng.choice(NON_DEFECT_KINDS)]).format(s=s, p=p)


def scan_truth(boxes: list[Box], reading: Reading, size: tuple[int, int]) -> list[tuple[int, str]]:
    return [(i, b.cls) for i, b in enumerate(boxes) if reading.scans(b.center, size)]


def generate_qa(samples: list[Sample], cfg: QAConfig, classes: tuple[str, ...], words: Words,
                sizes: Sizes, items: tuple[str, ...] = ITEM_WORDS) -> list[QAPair]:
    """QA pairs for every sample and (a share of) the templates, deterministic in cfg.seed; the
    classes are asked about in the line's words, the thing inspected called by its `items`,
    each image judged in its own size."""
    rng = random.Random(cfg.seed)
    pairs = []
    for s in samples:
        size = sizes[s.sample_id]
        for kind, q, idx, ans, reading in questions_for(s.boxes, classes, words, rng, cfg.phrasings_per_kind, size,
                                                        cfg.out_of_scope_share, cfg.embellish_share):
            pairs.append(QAPair(s.sample_id, "test", kind, for_line(q, items), ans, idx, reading,
                                scan_truth(s.boxes, reading, size)))
        if s.template_path and rng.random() < cfg.template_share:
            for kind, q, idx, ans, reading in questions_for([], classes, words, rng, 1, size, cfg.out_of_scope_share,
                                                            cfg.embellish_share):
                pairs.append(QAPair(s.sample_id, "template", kind, for_line(q, items), ans, idx, reading))
    return pairs


def _shift(d: Detection, rng: random.Random, size: tuple[int, int]) -> Detection:
    """Move a box far enough that IoU with the original is 0."""
    w, h = d.box[2] - d.box[0], d.box[3] - d.box[1]
    dx = rng.choice([-1, 1]) * (w + rng.randint(10, 60))
    dy = rng.choice([-1, 1]) * (h + rng.randint(10, 60))
    x1 = min(max(d.box[0] + dx, 0), size[0] - w - 1)
    y1 = min(max(d.box[1] + dy, 0), size[1] - h - 1)
    return Detection(d.cls, (x1, y1, x1 + w, y1 + h), d.conf)


def _invented(rng: random.Random, classes: tuple[str, ...], size: tuple[int, int]) -> Detection:
    w, h = rng.randint(20, 50), rng.randint(20, 50)
    x1, y1 = rng.randint(0, size[0] - w - 1), rng.randint(0, size[1] - h - 1)
    return Detection(rng.choice(classes), (x1, y1, x1 + w, y1 + h), round(rng.uniform(0.6, 0.99), 2))


def reject(qa: QAPair, rng: random.Random, classes: tuple[str, ...], size: tuple[int, int]) -> PreferencePair:
    """One wrong answer for a QA pair: misplaced, invented, missed or overconfident-wrong."""
    dets, idx = list(qa.answer.detections), list(qa.gt_index)
    reasons = ["invented"] + (["wrong_location", "missed", "overconfident_wrong"] if dets else [])
    reason = rng.choice(reasons)
    k = rng.randrange(len(dets)) if dets else 0
    rej_idx: list[int | None] = list(idx)
    if reason == "invented":
        dets.insert(k, _invented(rng, classes, size))
        rej_idx.insert(k, None)
    elif reason == "wrong_location":
        dets[k] = _shift(dets[k], rng, size)
        rej_idx[k] = None
    elif reason == "missed":
        dets.pop(k)
        rej_idx.pop(k)
    else:
        wrong = rng.choice([c for c in classes if c != dets[k].cls])
        dets[k] = Detection(wrong, dets[k].box, 0.99)
    count = len(dets) if qa.answer.count is not None else None
    rejected = Answer(dets, count=count, none_class=None if dets else (qa.answer.none_class or ""), asked=qa.reading)
    return PreferencePair(qa, rejected, rej_idx, reason)


def generate_preferences(pairs: list[QAPair], cfg: QAConfig, classes: tuple[str, ...], sizes: Sizes) -> list[PreferencePair]:
    """cfg.rejected_per_chosen preference pairs per QA pair (chosen = the correct answer)."""
    rng = random.Random(cfg.seed + 1)
    return [reject(qa, rng, classes, sizes[qa.sample_id]) for qa in pairs if not qa.reading.off
            for _ in range(cfg.rejected_per_chosen)]


def reading_to_json(r: Reading) -> dict:
    return {"classes": list(r.classes), "count": r.count, "area": r.area, "off": r.off}


def reading_from_json(d: dict) -> Reading:
    return Reading(tuple(d["classes"]), d["count"], d["area"], d["off"])


def qa_to_json(qa: QAPair) -> dict:
    return {"sample_id": qa.sample_id, "source": qa.source, "kind": qa.kind, "question": qa.question,
            "answer": qa.text, "gt_index": qa.gt_index, "reading": reading_to_json(qa.reading),
            "scan_truth": [list(t) for t in qa.scan_truth]}


def qa_from_json(row: dict, classes: tuple[str, ...]) -> QAPair:
    from components.qa.grammar import parse

    reading = reading_from_json(row["reading"])
    answer = parse(row["answer"], classes)
    answer.asked = reading
    return QAPair(row["sample_id"], row["source"], row["kind"], row["question"], answer, row["gt_index"], reading,
                  [(i, c) for i, c in row["scan_truth"]])


def pref_to_json(p: PreferencePair) -> dict:
    return {"qa": qa_to_json(p.qa), "rejected": render(p.rejected), "rejected_index": p.rejected_index, "reason": p.reason}


def pref_from_json(row: dict, classes: tuple[str, ...]) -> PreferencePair:
    from components.qa.grammar import parse

    return PreferencePair(qa_from_json(row["qa"], classes), parse(row["rejected"], classes), row["rejected_index"], row["reason"])
