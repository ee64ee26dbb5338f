"""Question-answer pairs and DPO preference pairs from each image's boxes.

Deterministic for a given seed. Answers are ground truth in the answer grammar
(confidence 1.00); templates (defect-free) give 'none found' answers.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from components.config import QAConfig
from components.data.records import Box, Sample
from components.qa.grammar import Answer, Detection, render

# Words an inspector uses for each class: (singular, plural).
NAMES: dict[str, list[tuple[str, str]]] = {
    "open": [("open circuit", "open circuits"), ("open", "opens"), ("break", "breaks")],
    "short": [("short circuit", "short circuits"), ("short", "shorts"), ("bridge", "bridges")],
    "mousebite": [("mouse bite", "mouse bites"), ("mousebite", "mousebites")],
    "spur": [("spur", "spurs")],
    "copper": [("spurious copper", "spurious copper spots"), ("copper splash", "copper splashes")],
    "pin-hole": [("pin-hole", "pin-holes"), ("pinhole", "pinholes"), ("pin hole", "pin holes")],
}

QUADRANTS = {"tl": "top left", "tr": "top right", "bl": "bottom left", "br": "bottom right"}

TEMPLATES: dict[str, list[str]] = {
    "locate": ["Where is the {s}?", "Locate the {p}.", "Show me every {s}.", "Find the {p} on this board."],
    "count_class": ["How many {p}?", "Count the {p} on this board.", "How many {s} defects are there?"],
    "count_total": ["How many defects are there?", "Count all defects.", "How many defects does this board have?"],
    "exists": ["Any {p}?", "Is there a {s} on this board?", "Are there {p}?", "Check for {p}."],
    "describe": ["Describe all defects on this board.", "What defects do you see?", "List every defect.", "Inspect this board."],
    "spatial": ["Any defects in the {q}?", "What defects are in the {q} area?", "List the defects in the {q} of the board."],
}


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
    target_class: str = ""
    """The class the question asks about ("" = any class)."""

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


def reading_order(boxes: list[Box]) -> list[int]:
    """Indices sorted top-to-bottom, then left-to-right, by box centre in 40-px rows."""
    return sorted(range(len(boxes)), key=lambda i: (int(boxes[i].center[1] // 40), boxes[i].center[0]))


def quadrant(box: Box, width: int, height: int) -> str:
    cx, cy = box.center
    return ("t" if cy < height / 2 else "b") + ("l" if cx < width / 2 else "r")


def _det(b: Box) -> Detection:
    return Detection(b.cls, (round(b.x1), round(b.y1), round(b.x2), round(b.y2)), 1.0)


def _answer(boxes: list[Box], keep: list[int], count: bool, none_class: str = "") -> Answer:
    ans = Answer([_det(boxes[i]) for i in keep], count=len(keep) if count else None)
    if not keep:
        ans.none_class = none_class
    return ans


def _question(rng: random.Random, kind: str, cls: str = "", quad: str = "") -> str:
    s, p = rng.choice(NAMES[cls]) if cls else ("", "")
    return rng.choice(TEMPLATES[kind]).format(s=s, p=p, q=QUADRANTS.get(quad, ""))


def questions_for(boxes: list[Box], classes: tuple[str, ...], rng: random.Random, per_kind: int,
                  size: tuple[int, int]) -> list[tuple[str, str, list[int], Answer, str]]:
    """(kind, question, gt indices, answer, asked class) for one image's boxes (none for a template)."""
    order = reading_order(boxes)
    present = sorted({b.cls for b in boxes})
    out = []
    for _ in range(per_kind):
        # Ask about a present class most of the time, an absent one otherwise (negatives).
        cls = rng.choice(present) if present and rng.random() < 0.7 else rng.choice(classes)
        quad = rng.choice(list(QUADRANTS))
        of_cls = [i for i in order if boxes[i].cls == cls]
        in_quad = [i for i in order if quadrant(boxes[i], *size) == quad]
        out += [
            ("locate", _question(rng, "locate", cls), of_cls, _answer(boxes, of_cls, False, cls), cls),
            ("exists", _question(rng, "exists", cls), of_cls, _answer(boxes, of_cls, False, cls), cls),
            ("count_class", _question(rng, "count_class", cls), of_cls, _answer(boxes, of_cls, True, cls), cls),
            ("count_total", _question(rng, "count_total"), order, _answer(boxes, order, True), ""),
            ("describe", _question(rng, "describe"), order, _answer(boxes, order, False), ""),
            ("spatial", _question(rng, "spatial", quad=quad), in_quad, _answer(boxes, in_quad, False), ""),
        ]
    return out


def generate_qa(samples: list[Sample], cfg: QAConfig, classes: tuple[str, ...], size: tuple[int, int] = (640, 640)) -> list[QAPair]:
    """QA pairs for every sample and (a share of) the templates, deterministic in cfg.seed."""
    rng = random.Random(cfg.seed)
    pairs = []
    for s in samples:
        for kind, q, idx, ans, cls in questions_for(s.boxes, classes, rng, cfg.phrasings_per_kind, size):
            pairs.append(QAPair(s.sample_id, "test", kind, q, ans, idx, cls))
        if s.template_path and rng.random() < cfg.template_share:
            for kind, q, idx, ans, cls in questions_for([], classes, rng, 1, size):
                pairs.append(QAPair(s.sample_id, "template", kind, q, ans, idx, cls))
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
    rejected = Answer(dets, count=count, none_class=None if dets else (qa.answer.none_class or ""))
    return PreferencePair(qa, rejected, rej_idx, reason)


def generate_preferences(pairs: list[QAPair], cfg: QAConfig, classes: tuple[str, ...],
                         size: tuple[int, int] = (640, 640)) -> list[PreferencePair]:
    """cfg.rejected_per_chosen preference pairs per QA pair (chosen = the correct answer)."""
    rng = random.Random(cfg.seed + 1)
    return [reject(qa, rng, classes, size) for qa in pairs for _ in range(cfg.rejected_per_chosen)]


def qa_to_json(qa: QAPair) -> dict:
    return {"sample_id": qa.sample_id, "source": qa.source, "kind": qa.kind, "question": qa.question,
            "answer": qa.text, "gt_index": qa.gt_index, "target_class": qa.target_class}


def qa_from_json(row: dict, classes: tuple[str, ...]) -> QAPair:
    from components.qa.grammar import parse

    return QAPair(row["sample_id"], row["source"], row["kind"], row["question"], parse(row["answer"], classes),
                  row["gt_index"], row.get("target_class", ""))


def pref_to_json(p: PreferencePair) -> dict:
    return {"qa": qa_to_json(p.qa), "rejected": render(p.rejected), "rejected_index": p.rejected_index, "reason": p.reason}


def pref_from_json(row: dict, classes: tuple[str, ...]) -> PreferencePair:
    from components.qa.grammar import parse

    return PreferencePair(qa_from_json(row["qa"], classes), parse(row["rejected"], classes), row["rejected_index"], row["reason"])
