"""The answer grammar: one text form that the generator writes and the parser reads back.

    answer   := [COUNT] n? ( item+ | [NONE] class* ) [EOF]  |  [OFF] [EOF]
    item     := [DEFECT] class [BOX] x1,y1,x2,y2 [CENTER] cx:cy [CONF] c
e.g. `[DEFECT] short [BOX] 454,300,493,396 [CENTER] 473:348 [CONF] 0.92 [EOF]`,
`[NONE] spur [EOF]` ("no spur found") and `[OFF] [EOF]` (the question is not about
defects on this board). Coordinates are integer pixels of the original image;
confidence has two decimals.

The language model writes the *scan form* (bottom of this file): what is asked, then a
decision per spatial-branch region; `resolve_scan` turns it into the full grammar using
the regions' boxes and confidences.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from components.config import CLASSES
from components.qa.vocab import ANY_AREA, AREAS, in_area


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
    """Set (possibly to "") when the answer is an explicit 'none found': the asked class(es), space-separated."""
    out_of_scope: bool = False
    """The question is not about defects on this board: nothing is reported."""
    asked: Reading | None = None
    """What the model read the question to ask (None: not known, e.g. parsed from grammar text)."""

    @property
    def none_found(self) -> bool:
        return not self.detections and not self.out_of_scope

    def to_dict(self) -> dict:
        from components.qa.sentence import sentence  # sentence.py reads Answer: imported here, not at the top

        out = {"defects": [d.to_dict() for d in self.detections], "none_found": self.none_found,
               "out_of_scope": self.out_of_scope}
        if self.count is not None:
            out["count"] = self.count
        if self.asked is not None:
            out["asked"] = {"classes": list(self.asked.classes), "count": self.asked.count, "area": self.asked.area}
        out["message"] = sentence(self)
        return out


def _fmt_conf(c: float) -> str:
    return f"{min(max(c, 0.0), 1.0):.2f}"


def render(answer: Answer) -> str:
    """Write an Answer in the grammar; parse(render(a)) == a up to rounding."""
    if answer.out_of_scope:
        return f"{OFF} [EOF]"
    parts: list[str] = []
    if answer.count is not None:
        parts += ["[COUNT]", str(answer.count)]
    if answer.detections:
        for d in answer.detections:
            x1, y1, x2, y2 = (int(round(v)) for v in d.box)
            cx, cy = d.center
            parts += ["[DEFECT]", d.cls, "[BOX]", f"{x1},{y1},{x2},{y2}", "[CENTER]", f"{cx}:{cy}", "[CONF]", _fmt_conf(d.conf)]
    else:
        parts += ["[NONE]"] + (answer.none_class.split() if answer.none_class else [])
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
    if t.peek() == OFF:
        t.take(OFF)
        t.expect("[EOF]")
        if t.peek() is not None:
            raise GrammarError(f"token {t.i}: text after [EOF]")
        return Answer(out_of_scope=True)
    if t.peek() == "[COUNT]":
        t.take("[COUNT]")
        n = t.take("a count")
        if not n.isdigit():
            raise GrammarError(f"token {t.i - 1}: count must be a whole number, got {n!r}")
        ans.count = int(n)
    if t.peek() == "[NONE]":
        t.take("[NONE]")
        named = []
        while t.peek() not in ("[EOF]", None):
            named.append(t.cls(classes))
        ans.none_class = " ".join(named)
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
#   [ASK] topic topic2 mode area ( Rk quad class rel sN decision )* [EOF]
#   topic    := class | all | [OFF]        ([OFF]: not a question about defects on this board)
#   topic2   := class | [-]                (a second asked class: "any shorts or spurs?")
#   mode     := count | list
#   area     := any | tl | tr | bl | br | top | bottom | left | right | centre
#   decision := [YES] | class | [NO]
#
# The language model first says what the question asks for (its reading); then the decoder
# walks the spatial branch's regions. Their descriptors are forced tokens: `R3 tl short [IN]
# s8` = name, quadrant, class, whether the region is of what was asked ([IN], computed by
# `Reading.scans` from the model's own reading: in the asked area) and score bucket. After each
# one the model decides: [YES] (a defect of the region's class), another class (a defect,
# re-classified) or [NO], whatever class was asked, as it would for "all defects"; the answer
# keeps the asked classes among the defects so decided. Coordinates and confidences come from
# the regions, never from generated digits.

ASK, YES, NO, ALL, OFF, NONE2 = "[ASK]", "[YES]", "[NO]", "all", "[OFF]", "[-]"
IN, OUT = "[IN]", "[OUT]"
MODES = ("count", "list")
AREA_TOKENS: tuple[str, ...] = (ANY_AREA, *AREAS)
HEADER_LEN = 5
"""[ASK] and the four tokens of the reading."""


@dataclass(frozen=True)
class Reading:
    """What a question asks: classes (empty = all), count or list, an area; or nothing of this board."""
    classes: tuple[str, ...] = ()
    count: bool = False
    area: str = ANY_AREA
    off: bool = False
    """Not a question about defects on this board ("What is the weather?")."""

    def covers(self, cls: str, center: tuple[float, float], size: tuple[int, int]) -> bool:
        """Whether a defect of `cls` centred at `center` answers this question."""
        return self.scans(center, size) and self.asks_class(cls)

    def scans(self, center: tuple[float, float], size: tuple[int, int]) -> bool:
        """Whether a region centred at `center` is in the part of the board the scan decides on
        (the asked area): there the model decides every region, whatever is asked of its class."""
        return not self.off and in_area(center, self.area, size)

    def asks_class(self, cls: str) -> bool:
        return not self.classes or cls in self.classes

    def tokens(self) -> list[str]:
        """The four scan tokens after [ASK]."""
        if self.off:
            return [OFF, NONE2, MODES[1], ANY_AREA]
        topic = list(self.classes[:2]) or [ALL]
        return topic + [NONE2] * (2 - len(topic)) + [MODES[0] if self.count else MODES[1], self.area]

    @classmethod
    def from_tokens(cls, toks: list[str], classes: tuple[str, ...]) -> Reading:
        t1, t2, mode, area = toks
        if t1 == OFF:
            return cls(off=True)
        if t1 != ALL and t1 not in classes:
            raise GrammarError(f"reading {toks}: {t1!r} is neither a class, 'all' nor {OFF}")
        if t2 != NONE2 and (t2 not in classes or t1 == ALL):
            raise GrammarError(f"reading {toks}: second topic {t2!r} must be a class after a class, or {NONE2}")
        if mode not in MODES:
            raise GrammarError(f"reading {toks}: expected count or list, got {mode!r}")
        if area not in AREA_TOKENS:
            raise GrammarError(f"reading {toks}: unknown area {area!r}")
        picked = tuple(c for c in (t1, t2) if c not in (ALL, NONE2))
        return cls(picked, mode == MODES[0], area)


def region_name(i: int) -> str:
    return f"R{i + 1}"


def to_scan(reading: Reading, descriptors: list[list[str]], decisions: list[str]) -> str:
    """The scan text for a reading, region descriptors and per-region decisions (class, [YES] or [NO])."""
    parts = [ASK, *reading.tokens()]
    if not reading.off:
        for desc, dec in zip(descriptors, decisions, strict=True):
            parts += desc + [dec]
    return " ".join(parts + ["[EOF]"])


def read_scan(text: str, classes: tuple[str, ...] = CLASSES) -> Reading:
    """Only the reading of a scan (what the model took the question to ask)."""
    t = _Tokens(text)
    t.expect(ASK)
    return Reading.from_tokens([t.take("the reading") for _ in range(HEADER_LEN - 1)], classes)


def resolve_scan(text: str, regions: list[Detection], classes: tuple[str, ...] = CLASSES) -> Answer:
    """Parse the model's scan; each region decided as a class becomes a detection with the
    region's box and confidence and the class the model chose."""
    reading = read_scan(text, classes)
    t = _Tokens(text)
    t.i = HEADER_LEN
    dets = []
    for k in range(0 if reading.off else len(regions)):
        if t.peek() == "[EOF]":
            break
        name = t.take("a region name")
        if name != region_name(k):
            raise GrammarError(f"token {t.i - 1}: expected {region_name(k)}, got {name!r}")
        t.take("the region's quadrant")
        region_class = t.take("the region's class")
        if t.take("the region's relation") not in (IN, OUT):
            raise GrammarError(f"token {t.i - 1}: expected {IN} or {OUT}")
        t.take("the region's score bucket")
        decision = t.take("a decision")
        if decision == YES:
            decision = region_class
        if decision in classes:
            dets.append(Detection(decision, regions[k].box, regions[k].conf))
        elif decision != NO:
            raise GrammarError(f"token {t.i - 1}: decision must be {YES}, a class or {NO}, got {decision!r}")
    t.expect("[EOF]")
    # The scan decides every region of the asked area; the answer is the asked classes among them.
    return answer_for(reading, [d for d in dets if reading.asks_class(d.cls)])


def answer_for(reading: Reading, dets: list[Detection]) -> Answer:
    """The Answer of a reading with these detections (count, 'none found' and scope follow)."""
    if reading.off:
        return Answer(out_of_scope=True, asked=reading)
    answer = Answer(dets, count=len(dets) if reading.count else None, asked=reading)
    if not dets:
        answer.none_class = " ".join(reading.classes)
    return answer
