"""The wafer line's two forms: the language model's reading and the answer.

Reading (what the language model writes, under `model/wafer_lm.py`'s constraints), after the
question and the pattern branch's evidence `[EV] Center s8 Loc s1 None s0`:

    [ASK] presence Scratch [ANS] Loc [EOF]      kind, the label asked about (- when none; for presence: a
                                                pattern name it does not know), the pattern it decides
    [ASK] [OFF] [EOF]                           not a question about the map

Answer (what the service returns; `render` writes it, `parse` reads every answer `render` writes):

    [KIND] location [PATTERN] Center [CONF] 0.93 [LOC] centre [MORPH] cluster [FAIL] 123 [DIES] 2000 [SHARE] 6.15 [EOF]

Each kind carries the fields it answers with (FIELDS); [CONF] is the calibrated probability that
what the answer states is right (for presence: that the asked pattern is there, or is not; a
presence answer to a name the model does not know has `[ASKED] - [FOUND] -` and states the pattern).
Numbers come from code (`qa/wafer_measure`), the pattern and its confidence from the branch, the
choice of what to say from the reading.
"""
from __future__ import annotations

import dataclasses

from components.qa.wafer_measure import LOCATIONS, MORPHOLOGIES, Measured
from components.qa.wafer_vocab import KINDS, NONE, OFF_KIND, PATTERN_LOCATION, ROOT_CAUSES

ASK, ANS, EV, EOF, OFF, NO_LABEL = "[ASK]", "[ANS]", "[EV]", "[EOF]", "[OFF]", "-"
READING_TOKENS = (ASK, ANS, EV, EOF, OFF, NO_LABEL)

FIELDS: dict[str, tuple[str, ...]] = {
    "pattern": ("pattern", "conf"),
    "presence": ("asked", "found", "pattern", "conf"),
    "location": ("pattern", "conf", "loc", "morph", "fail", "dies", "share"),
    "morphology": ("pattern", "conf", "loc", "morph"),
    "count": ("fail", "dies", "share"),
    "share": ("fail", "dies", "share"),
    "cause": ("pattern", "conf", "cause"),
    OFF_KIND: (),
}
"""Per kind, the answer's fields in their order."""
SHARE_DECIMALS = 2
"""The failing share is written in percent with this many decimals."""


@dataclasses.dataclass(frozen=True)
class Reading:
    kind: str
    """One of KINDS or OFF_KIND."""
    asked: str = ""
    """The label a presence question asks about."""
    decided: str = ""
    """The pattern the language model decided the map shows."""

    def text(self) -> str:
        if self.kind == OFF_KIND:
            return f"{ASK} {OFF} {EOF}"
        return f"{ASK} {self.kind} {self.asked or NO_LABEL} {ANS} {self.decided} {EOF}"


def parse_reading(text: str, labels: tuple[str, ...]) -> Reading:
    t = text.split()
    if t[:3] == [ASK, OFF, EOF]:
        return Reading(OFF_KIND)
    if len(t) != 6 or t[0] != ASK or t[3] != ANS or t[5] != EOF or t[1] not in KINDS:
        raise ValueError(f"not a wafer reading: {text!r}")
    asked = "" if t[2] == NO_LABEL else t[2]
    if (asked and asked not in labels) or t[4] not in labels:
        raise ValueError(f"a wafer reading names a label outside {labels}: {text!r}")
    return Reading(t[1], asked, t[4])


@dataclasses.dataclass(frozen=True)
class WaferAnswer:
    kind: str
    pattern: str = ""
    conf: float | None = None
    asked: str = ""
    found: bool | None = None
    loc: str = ""
    morph: str = ""
    fail: int | None = None
    dies: int | None = None
    share: float | None = None
    """Failing dies over dies on the wafer, in percent."""
    cause: tuple[str, ...] = ()
    """Root-cause hypotheses (ROOT_CAUSES of `pattern`)."""


def answer_of(reading: Reading, probs: dict[str, float], measured: Measured) -> WaferAnswer:
    """The answer a reading gives, from the branch's calibrated probabilities and the measured map."""
    if reading.kind == OFF_KIND:
        return WaferAnswer(OFF_KIND)
    p = reading.decided
    fields: dict = {"pattern": p, "conf": round(probs[p], 2), "fail": measured.failing, "dies": measured.dies,
                    "share": round(100 * measured.share, SHARE_DECIMALS), "cause": tuple(ROOT_CAUSES.get(p, ())),
                    "loc": "none" if p == NONE else PATTERN_LOCATION.get(p, measured.location),
                    "morph": "scattered" if p == NONE and measured.failing else ("none" if p == NONE else measured.morphology)}
    if reading.kind == "presence" and reading.asked:
        found = p == reading.asked
        pa = probs[reading.asked]
        fields |= {"asked": reading.asked, "found": found, "conf": round(pa if found else 1 - pa, 2)}
    keep = FIELDS[reading.kind]
    return WaferAnswer(reading.kind, **{k: v for k, v in fields.items() if k in keep})


def render(a: WaferAnswer) -> str:
    out = [f"[KIND] {a.kind}"]
    for name in FIELDS[a.kind]:
        value = getattr(a, name)
        if name == "conf":
            value = f"{value:.2f}"
        elif name == "share":
            value = f"{value:.{SHARE_DECIMALS}f}"
        elif name == "found":
            value = NO_LABEL if value is None else "yes" if value else "no"
        elif name == "asked":
            value = value or NO_LABEL
        elif name == "cause":
            value = " | ".join(value)
        out.append(f"[{name.upper()}] {value}")
    return " ".join(out + [EOF])


def parse(text: str, labels: tuple[str, ...]) -> WaferAnswer:
    """Read an answer `render` wrote; ValueError saying what is wrong."""
    body = text.strip()
    if not body.startswith("[KIND] ") or not body.endswith(EOF):
        raise ValueError(f"a wafer answer starts with [KIND] and ends with {EOF}: {text!r}")
    parts = _tagged(body[len("[KIND] "):-len(EOF)].strip())
    kind = parts.pop(0)[1] if parts and parts[0][0] == "" else ""
    if kind not in FIELDS:
        raise ValueError(f"unknown answer kind {kind!r} in {text!r}")
    names = [n for n, _ in parts]
    if names != list(FIELDS[kind]):
        raise ValueError(f"a {kind} answer has fields {list(FIELDS[kind])}, this one {names}: {text!r}")
    values = {n: _value(n, v, labels, text) for n, v in parts}
    return WaferAnswer(kind, **values)


def _tagged(body: str) -> list[tuple[str, str]]:
    """'location [PATTERN] Center [CONF] 0.93' -> [('', 'location'), ('pattern', 'Center'), ('conf', '0.93')]."""
    out, name, words = [], "", []
    for w in body.split():
        if w.startswith("[") and w.endswith("]") and w[1:-1].isupper():
            out.append((name, " ".join(words)))
            name, words = w[1:-1].lower(), []
        else:
            words.append(w)
    return out + [(name, " ".join(words))]


def _value(name: str, raw: str, labels: tuple[str, ...], text: str):
    bad = ValueError(f"field [{name.upper()}] {raw!r} cannot be read in {text!r}")
    try:
        if name == "asked" and raw == NO_LABEL:
            return ""
        if name in ("pattern", "asked"):
            if raw not in labels:
                raise bad
            return raw
        if name == "conf":
            value = float(raw)
            if not 0 <= value <= 1:
                raise bad
            return value
        if name == "share":
            return float(raw)
        if name in ("fail", "dies"):
            return int(raw)
        if name == "found":
            if raw not in ("yes", "no", NO_LABEL):
                raise bad
            return None if raw == NO_LABEL else raw == "yes"
        if name == "loc":
            if raw not in LOCATIONS:
                raise bad
            return raw
        if name == "morph":
            if raw not in MORPHOLOGIES:
                raise bad
            return raw
        if name == "cause":
            return tuple(c.strip() for c in raw.split("|") if c.strip())
    except ValueError as exc:
        raise bad from exc
    raise bad


def sentence(a: WaferAnswer, words: dict, item: str = "wafer") -> str:
    """The answer as the engineer reads it; a pattern named by the line's first word for it."""
    def name(label: str) -> str:
        return words[label][0][0] if label in words else label

    if a.kind == OFF_KIND:
        return (f"I can only answer questions about this {item}'s failing dies: their pattern, where they are, "
                "their shape, how many failed and what might cause it.")
    none = a.pattern == NONE
    said = "no systematic pattern" if none else _a(name(a.pattern))
    conf = f" (confidence {a.conf:.2f})" if a.conf is not None else ""
    if a.kind == "pattern":
        return f"This {item} shows {said}{conf}."
    if a.kind == "presence" and not a.asked:
        return (f"That is not a pattern name I know (I know: {', '.join(name(lb) for lb in words if lb != NONE)}); "
                f"this {item} shows {said}{conf}.")
    if a.kind == "presence":
        head = f"Yes, there is {_a(name(a.asked))}" if a.found else f"No {name(a.asked)} found"
        rest = "" if a.found else f"; the {item} shows {said}"
        return f"{head}{conf}{rest}."
    if a.kind == "morphology":
        return f"The failing dies form {'no systematic shape (scattered)' if none else _shape(a.morph)}{conf}."
    counted = f"{a.fail} of {a.dies} dies failed ({a.share:.{SHARE_DECIMALS}f} %)" if a.dies else ""
    if a.kind in ("count", "share"):
        return f"{counted}."
    if a.kind == "location":
        where = "scattered over the wafer, with no systematic pattern" if none else _where(a.loc)
        return f"The failing dies are {where}{conf}: {counted}."
    causes = "; ".join(a.cause)
    if none:
        return f"This {item} shows no systematic pattern{conf}, so {causes}."
    return f"This {item} shows {said}{conf}. Possible causes to check (hypotheses, not findings): {causes}."


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _where(loc: str) -> str:
    return {"none": "nowhere (no die failed)", "centre": "at the centre", "edge": "at the edge",
            "ring": "in a ring around the wafer", "everywhere": "spread over the whole wafer"}.get(loc, f"in the {loc} part")


def _shape(morph: str) -> str:
    return {"cluster": "a cluster", "line": "a line (scratch-like)", "ring": "a ring", "scattered": "a scattered spread",
            "near-full": "a near-full failure", "none": "nothing (no die failed)"}[morph]
