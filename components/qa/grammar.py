"""The answer grammar: one text form that the generator writes and the parser reads back.

    answer   := [COUNT] n? ( item+ | [NONE] class? ) [EOF]
    item     := [DEFECT] class [BOX] x1,y1,x2,y2 [CENTER] cx:cy [CONF] c
e.g. `[DEFECT] short [BOX] 454,300,493,396 [CENTER] 473:348 [CONF] 0.92 [EOF]`
and  `[NONE] spur [EOF]` ("no spur found"). Coordinates are integer pixels of the
original image; confidence has two decimals.

The language model writes the *scan form* (bottom of this file): what is asked, then a
decision per spatial-branch region; `resolve_scan` turns it into the full grammar using
the regions' boxes and confidences.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from components.config import CLASSES


class GrammarError(ValueError):
    """The text does not follow the answer grammar; the message says where."""


@dataclass(frozen=True)
class Detection:
    cls: str
    box: tuple[int, int, int, int]
    conf: float

    @property
    def center(self) -> tuple[int, int]:
        return (round((self.box[0] + self.box[2]) / 2), round((self.box[1] + self.box[3]) / 2))

    def to_dict(self) -> dict:
        return {"class": self.cls, "box": list(self.box), "center": list(self.center), "confidence": round(self.conf, 4)}


@dataclass
class Answer:
    detections: list[Detection] = field(default_factory=list)
    count: int | None = None
    none_class: str | None = None
    """Set (possibly to "") when the answer is an explicit 'none found'."""

    @property
    def none_found(self) -> bool:
        return not self.detections

    def to_dict(self) -> dict:
        out = {"defects": [d.to_dict() for d in self.detections], "none_found": self.none_found}
        if self.count is not None:
            out["count"] = self.count
        if self.none_found:
            out["message"] = f"No {self.none_class or 'defects'} found"
        return out


def _fmt_conf(c: float) -> str:
    return f"{min(max(c, 0.0), 1.0):.2f}"


def render(answer: Answer) -> str:
    """Write an Answer in the grammar; parse(render(a)) == a up to rounding."""
    parts: list[str] = []
    if answer.count is not None:
        parts += ["[COUNT]", str(answer.count)]
    if answer.detections:
        for d in answer.detections:
            x1, y1, x2, y2 = (int(round(v)) for v in d.box)
            cx, cy = d.center
            parts += ["[DEFECT]", d.cls, "[BOX]", f"{x1},{y1},{x2},{y2}", "[CENTER]", f"{cx}:{cy}", "[CONF]", _fmt_conf(d.conf)]
    else:
        parts += ["[NONE]"] + ([answer.none_class] if answer.none_class else [])
    parts.append("[EOF]")
    return " ".join(parts)


_BOX = re.compile(r"^(\d+),(\d+),(\d+),(\d+)$")
_CENTER = re.compile(r"^(\d+):(\d+)$")
_CONF = re.compile(r"^(0(\.\d+)?|1(\.0+)?)$")


class _Tokens:
    def __init__(self, text: str):
        self.toks = text.split()
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, what: str) -> str:
        tok = self.peek()
        if tok is None:
            raise GrammarError(f"token {self.i}: expected {what}, got end of text")
        self.i += 1
        return tok

    def expect(self, literal: str) -> None:
        tok = self.take(literal)
        if tok != literal:
            raise GrammarError(f"token {self.i - 1}: expected {literal}, got {tok!r}")

    def cls(self, classes: tuple[str, ...]) -> str:
        tok = self.take("a defect class")
        if tok not in classes:
            raise GrammarError(f"token {self.i - 1}: unknown class {tok!r}")
        return tok


def _parse_item(t: _Tokens, classes: tuple[str, ...]) -> Detection:
    cls = t.cls(classes)
    t.expect("[BOX]")
    m = _BOX.match(t.take("x1,y1,x2,y2"))
    if not m:
        raise GrammarError(f"token {t.i - 1}: box must be x1,y1,x2,y2")
    box = tuple(int(v) for v in m.groups())
    if not (box[0] < box[2] and box[1] < box[3]):
        raise GrammarError(f"token {t.i - 1}: box corners out of order {box}")
    t.expect("[CENTER]")
    if not _CENTER.match(t.take("cx:cy")):
        raise GrammarError(f"token {t.i - 1}: centre must be cx:cy")
    t.expect("[CONF]")
    conf = t.take("a confidence")
    if not _CONF.match(conf):
        raise GrammarError(f"token {t.i - 1}: confidence {conf!r} is not in [0, 1]")
    return Detection(cls, box, float(conf))  # type: ignore[arg-type]


def parse(text: str, classes: tuple[str, ...] = CLASSES) -> Answer:
    """Read a grammar string back into an Answer; GrammarError on anything else."""
    t = _Tokens(text)
    ans = Answer()
    if t.peek() == "[COUNT]":
        t.take("[COUNT]")
        n = t.take("a count")
        if not n.isdigit():
            raise GrammarError(f"token {t.i - 1}: count must be a whole number, got {n!r}")
        ans.count = int(n)
    if t.peek() == "[NONE]":
        t.take("[NONE]")
        ans.none_class = t.cls(classes) if t.peek() not in ("[EOF]", None) else ""
    else:
        while t.peek() == "[DEFECT]":
            t.take("[DEFECT]")
            ans.detections.append(_parse_item(t, classes))
        if not ans.detections:
            raise GrammarError(f"token {t.i}: expected [DEFECT] or [NONE], got {t.peek()!r}")
    t.expect("[EOF]")
    if t.peek() is not None:
        raise GrammarError(f"token {t.i}: text after [EOF]")
    if ans.count is not None and ans.detections and ans.count != len(ans.detections):
        raise GrammarError(f"[COUNT] {ans.count} but {len(ans.detections)} defects listed")
    return ans


# ---- scan form (what the language model writes) ---------------------------------------
#
#   [ASK] (class | all) (count | list) ( Rk quad class sN decision )* [EOF]
#   decision := [YES] | class | [NO]
#
# The language model first says what the question asks for (a class or all, counted or
# listed); then the decoder walks the spatial branch's regions: their descriptors
# (`R3 tl short s8`: quadrant, class, score bucket) are forced tokens, and after each one
# the model decides: [YES] (report it as the region's class), another class (report it,
# re-classified) or [NO]. Coordinates and
# confidences come from the regions, never from generated digits.

ASK, YES, NO, ALL = "[ASK]", "[YES]", "[NO]", "all"
MODES = ("count", "list")


def region_name(i: int) -> str:
    return f"R{i + 1}"


def to_scan(target_class: str, count: bool, descriptors: list[list[str]], decisions: list[str]) -> str:
    """The scan text for given region descriptors and per-region decisions (class or [NO])."""
    parts = [ASK, target_class or ALL, MODES[0] if count else MODES[1]]
    for desc, dec in zip(descriptors, decisions, strict=True):
        parts += desc + [dec]
    return " ".join(parts + ["[EOF]"])


def resolve_scan(text: str, regions: list[Detection], classes: tuple[str, ...] = CLASSES) -> Answer:
    """Parse the model's scan; each region decided as a class becomes a detection with the
    region's box and confidence and the class the model chose."""
    t = _Tokens(text)
    t.expect(ASK)
    topic = t.take("a class or 'all'")
    if topic != ALL and topic not in classes:
        raise GrammarError(f"token {t.i - 1}: {topic!r} is neither a class nor 'all'")
    mode = t.take("count or list")
    if mode not in MODES:
        raise GrammarError(f"token {t.i - 1}: expected count or list, got {mode!r}")
    dets = []
    for k in range(len(regions)):
        if t.peek() == "[EOF]":
            break
        name = t.take("a region name")
        if name != region_name(k):
            raise GrammarError(f"token {t.i - 1}: expected {region_name(k)}, got {name!r}")
        t.take("the region's quadrant")
        region_class = t.take("the region's class")
        t.take("the region's score bucket")
        decision = t.take("a decision")
        if decision == YES:
            decision = region_class
        if decision in classes:
            dets.append(Detection(decision, regions[k].box, regions[k].conf))
        elif decision != NO:
            raise GrammarError(f"token {t.i - 1}: decision must be {YES}, a class or {NO}, got {decision!r}")
    t.expect("[EOF]")
    answer = Answer(dets, count=len(dets) if mode == "count" else None)
    if not dets:
        answer.none_class = "" if topic == ALL else topic
    return answer
