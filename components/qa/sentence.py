"""The answer as a person reads it: one plain sentence from a structured Answer.

"One short circuit, at (291, 242), confidence 0.64." / "No short circuit found." The grammar
text (`grammar.render`) stays what programs read; this is what the page and the chat show.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from components.line import Words, default_items, default_words
from components.qa.vocab import ANY_AREA, area_words, first_name

if TYPE_CHECKING:  # grammar.Answer.to_dict calls sentence(): a runtime import would be a cycle
    from components.qa.grammar import Answer, Detection

NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _name(cls: str, words: Words, n: int = 1) -> str:
    singular, plural = first_name(cls, words)
    return singular if n == 1 else plural


def _count(n: int, cls: str | None, words: Words) -> str:
    word = NUMBERS[n] if n < len(NUMBERS) else str(n)
    return f"{word} {_name(cls, words, n) if cls else ('defect' if n == 1 else 'defects')}"


def _where(area: str) -> str:
    return "" if area == ANY_AREA else f" in the {area_words(area)}"


def _item(d: Detection, with_class: bool, words: Words) -> str:
    cx, cy = d.center
    return (f"{_name(d.cls, words)} " if with_class else "") + f"at ({cx}, {cy}), confidence {d.conf:.2f}"


def scope_message(classes: tuple[str, ...] | None = None, words: Words | None = None,
                  items: tuple[str, ...] | None = None) -> str:
    """What the model answers a question that is not about defects; the classes, their words and
    what the thing inspected is called (`items`) default to the default line's."""
    words = default_words() if words is None else words
    item = (items or default_items())[0]
    kinds = ", ".join(_name(c, words, 2) for c in (tuple(words) if classes is None else classes))
    return (f"I can only answer questions about defects on this {item}: where they are, how many there are, "
            f"whether there are any of a kind ({kinds}), or which are in an area such as the top left.")


def sentence(answer: Answer, words: Words | None = None, items: tuple[str, ...] | None = None) -> str:
    """One sentence that says what was found, for the question the model read, each class called
    by the first of its words (default: the default line's)."""
    words = default_words() if words is None else words
    if answer.out_of_scope:
        return scope_message(words=words, items=items)
    asked = answer.asked
    area = _where(asked.area) if asked else ""
    dets = answer.detections
    if not dets:
        named = (answer.none_class or "").split()
        what = " or ".join(_name(c, words, 2 if len(named) > 1 else 1) for c in named) or "defects"
        return f"No {what} found{area}."
    kinds = {d.cls for d in dets}
    one_kind = len(kinds) == 1
    head = _count(len(dets), next(iter(kinds)) if one_kind else None, words)
    items = "; ".join(_item(d, not one_kind, words) for d in dets)
    return f"{head[0].upper()}{head[1:]}{area}: {items}." if len(dets) > 1 else f"{head[0].upper()}{head[1:]}{area}, {items}."
