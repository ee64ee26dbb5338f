"""The words of the questions: the board's areas, the training phrasings and the words of
questions that are not about defects. One place, read by the QA generator (training
phrasings), the tokenizer (its closed vocabulary) and the decoder (areas). What each class is
called is the product line's (`lines/<line>.yaml` `words`, `cfg.line.words`), passed to each
of them: a `Words` mapping, class -> [(singular, plural), ...].

Areas are predicates on a box centre in board-relative coordinates (u, v in [0, 1], v down),
so the answer to "which defects are in the top left?" is computed, never guessed.
"""
from __future__ import annotations

import re

from components.line import Words


def own_name(cls: str) -> tuple[str, str]:
    """(singular, plural) of a class its line gives no words: the class name itself."""
    return cls, f"{cls}s"


def first_name(cls: str, words: Words) -> tuple[str, str]:
    """The name answers call a class by: the first of its line's words."""
    return words[cls][0] if cls in words else own_name(cls)


# The words the phrasings below (and the held-out ones) name the inspected thing with; a line
# whose inspectors say otherwise (`items` of lines/<line>.yaml: strip, sheet, ...) gets its own
# words in their place, the i-th for the i-th (`for_line`).
ITEM_WORDS = ("board", "pcb", "panel")
_ITEM = re.compile(r"\b(" + "|".join(ITEM_WORDS) + r")\b", re.IGNORECASE)


def for_line(text: str, items: tuple[str, ...]) -> str:
    """`text` with board / pcb / panel said as the line's `items` (first letter's case kept)."""
    if tuple(items) == ITEM_WORDS:
        return text

    def swap(m: re.Match) -> str:
        word = items[ITEM_WORDS.index(m.group(0).lower()) % len(items)]
        return word[0].upper() + word[1:] if m.group(0)[0].isupper() else word

    return _ITEM.sub(swap, text)


ANY_AREA = "any"
# Area token -> the words that name it, composed the way people combine them ("lower-left
# part", "top right corner", "upper half"). Quadrants first: the region descriptors use them.
_UP, _DOWN = ("top", "upper"), ("bottom", "lower")
_CORNER_NOUNS = ("", " corner", " part", " area", " region", " section", " quadrant", " side")
_HALF_NOUNS = (" half", " part", " side", " area", " region", " section", "")


def _corner(vertical: tuple[str, ...], horizontal: str) -> list[str]:
    return [f"{v}{sep}{horizontal}{noun}" for v in vertical for sep in (" ", "-") for noun in _CORNER_NOUNS]


AREAS: dict[str, list[str]] = {
    "tl": _corner(_UP, "left"), "tr": _corner(_UP, "right"),
    "bl": _corner(_DOWN, "left"), "br": _corner(_DOWN, "right"),
    "top": [f"{v}{n}" for v in _UP for n in _HALF_NOUNS],
    "bottom": [f"{v}{n}" for v in _DOWN for n in _HALF_NOUNS],
    "left": [f"{h}{n}" for h in ("left", "left-hand") for n in _HALF_NOUNS],
    "right": [f"{h}{n}" for h in ("right", "right-hand") for n in _HALF_NOUNS],
    "centre": [f"{c}{n}" for c in ("centre", "center", "middle") for n in ("", " area", " region", " part", " of the board")],
}
QUADRANTS: tuple[str, ...] = ("tl", "tr", "bl", "br")
CENTRE_SPAN = (0.25, 0.75)
"""The centre area: the middle half of the board along each axis."""

# Questions that are not about defects on the board (trained to be declined).
OUT_OF_SCOPE: list[str] = [
    "What is the weather today?", "Who made this board?", "What time is it?", "How much does this board cost?",
    "What is the part number?", "Tell me a joke.", "Who are you?", "What year is it?",
    "Which factory produced this?", "What is the capital of France?", "How do I reset my password?",
    "What colour is the board?", "Translate this into German.", "How old is this machine?",
    "What is the serial number of this board?", "Can you order more boards?", "Hello!", "What is your name?",
    "Write me a poem.", "How many employees work here?", "Is it going to rain?", "Who is the operator?",
    "What is two plus two?", "Where is the cafeteria?", "When is the next shift?",
    # Requests and chit-chat of a working day: what the model declines must be the whole range of
    # what is no question about defects, not a list it could learn by heart.
    "Send an email to the quality team.", "Remind me to call the supplier.", "Play some music.",
    "Order lunch for the team.", "Print the shift report.", "Call my supervisor.",
    "What day of the week is it?", "How far is the airport?", "Where can I park?",
    "What is the wifi password?", "Open the door please.", "Turn on the lights.",
    "How do I fill in my timesheet?", "Schedule a call with maintenance.", "Can you help me with my homework?",
    "Who won the game last night?", "Is the canteen open?", "What should I eat tonight?",
    "Reserve a parking space for me.", "How many holidays do I have left?", "What is the stock price?",
    "Find my badge.", "When does my shift end?", "Can you recommend a good film?",
]

# Things on or around a board that are not defects: out-of-scope questions ask about them in the
# very frames of defect questions ("How many resistors?"), so that what decides "not about
# defects" is what is asked about, never the frame around it.
NON_DEFECTS: list[tuple[str, str]] = [
    ("capacitor", "capacitors"), ("resistor", "resistors"), ("barcode", "barcodes"), ("label", "labels"),
    ("screw", "screws"), ("connector", "connectors"), ("chip", "chips"), ("logo", "logos"),
    ("fiducial mark", "fiducial marks"), ("led", "leds"), ("battery", "batteries"), ("fan", "fans"),
]
NON_DEFECT_KINDS = ("locate", "exists", "count_class")
"""The defect-question kinds whose phrasings also ask about NON_DEFECTS."""

# Requests people wrap around any question, in-scope or not ("can you tell me {q}").
FRAMES: list[str] = ["I want to know {q}", "can you tell me {q}", "I need to know: {q}", "let me know {q}",
                     "one more thing, {q}", "I am asking: {q}", "could you check this: {q}", "my question is {q}"]

# Words that say what is asked (beside class and area names); never dropped in training (see
# train/warmup.py, `word_dropout`): without them a question asks something else.
DEFECT_WORDS: tuple[str, ...] = ("defect", "defects", "fault", "faults", "flaw", "flaws", "problem", "problems",
                                 "wrong", "all", "every", "each", "total", "free", "not", "no")

# Words and phrases people put around a question; the generator sprinkles them in (`generate.
# embellish`) so that no kind of question is told by its filler words ("in", "what is").
FILLER_PHRASES: list[str] = ["please", "on this board", "of the pcb", "in this image", "in this picture", "for me",
                             "now", "quickly", "here", "on it", "on this scan", "if you can", "thanks",
                             "in this scan", "on the panel", "at the moment"]
# No lead says what is asked: "right," once taught the model that "right" may mean nothing,
# and "top right" then read as "top" (tests/model/test_grammar.py checks the words).
LEADS: list[str] = ["please", "hey,", "ok,", "quick question:", "so", "and", "well,", "next:"]

# Everyday words of requests, so polite or chatty wording reads as known words.
FILLER: list[str] = ["please", "could", "can", "would", "you", "me", "tell", "show", "let", "know", "i", "need", "want",
                     "to", "see", "kindly", "quickly", "just", "check", "the", "a", "an", "this", "that", "on", "in",
                     "of", "for", "at", "is", "are", "there", "any", "all", "every", "each", "board", "pcb", "image",
                     "picture", "scan", "panel", "do", "does", "have", "has", "find", "found", "look", "hey", "ok",
                     "thanks", "not", "no", "yes", "it", "its", "what", "where", "which", "how", "many", "much",
                     "number", "some", "here", "and", "or", "with", "if", "be", "by", "from", "so", "now", "my"]

CONTRACTIONS: dict[str, str] = {
    "what's": "what is", "where's": "where is", "there's": "there is", "there're": "there are", "isn't": "is not",
    "aren't": "are not", "don't": "do not", "doesn't": "does not", "can't": "can not", "won't": "will not",
    "i'd": "i would", "i'm": "i am", "let's": "let us", "how's": "how is", "it's": "it is", "that's": "that is",
}


def in_area(center: tuple[float, float], area: str, size: tuple[int, int]) -> bool:
    """Whether a box centre (original pixels) lies in the area of a board of `size` (w, h)."""
    u, v = center[0] / size[0], center[1] / size[1]
    lo, hi = CENTRE_SPAN
    return {
        ANY_AREA: True,
        "tl": u < 0.5 and v < 0.5, "tr": u >= 0.5 and v < 0.5,
        "bl": u < 0.5 and v >= 0.5, "br": u >= 0.5 and v >= 0.5,
        "top": v < 0.5, "bottom": v >= 0.5, "left": u < 0.5, "right": u >= 0.5,
        "centre": lo <= u < hi and lo <= v < hi,
    }[area]


def quadrant(center: tuple[float, float], size: tuple[int, int]) -> str:
    """The quadrant token of a box centre."""
    return next(q for q in QUADRANTS if in_area(center, q, size))


def area_words(area: str) -> str:
    """How an answer names an area (its first phrase)."""
    return AREAS[area][0]


def reading_order(boxes) -> list[int]:
    """Indices of boxes (anything with .center) top-to-bottom, then left-to-right, in 40-px rows."""
    return sorted(range(len(boxes)), key=lambda i: (int(boxes[i].center[1] // 40), boxes[i].center[0]))


# Training phrasings per question kind: {s}/{p} a class (singular/plural), {p2} a second class,
# {a} an area. Evaluation asks in other wordings (components/evaluation/heldout_questions.yaml).
PHRASINGS: dict[str, list[str]] = {
    "locate": ["Where is the {s}?", "Locate the {p}.", "Show me every {s}.", "Find the {p} on this board.",
               "Where are the {p}?", "Point out the {p}.", "Mark each {s}.", "Please locate any {s}.",
               "Can you find the {p}?", "Show the {p} on the pcb.", "Give me the location of each {s}.",
               "{p} : where?", "Highlight the {p} in this image.", "Find every {s} please.",
               "Where exactly is the {s} on this panel?", "Show where the {p} are."],
    "exists": ["Any {p}?", "Is there a {s} on this board?", "Are there {p}?", "Check for {p}.",
               "Does this board have any {p}?", "Is the board free of {p}?", "Do you see a {s}?",
               "Are there any {p} on this pcb?", "Can you check whether there is a {s}?", "{s} present?",
               "Is there any {s} here?", "Does the board show a {s}?", "Tell me if there are {p}.",
               "Is this board {s} free?", "Has this board got any {p}?", "Please check the board for {p}."],
    "count_class": ["How many {p}?", "Count the {p} on this board.", "How many {s} defects are there?",
                    "What is the number of {p}?", "How many {p} can you find?", "Number of {p}?",
                    "Count every {s}.", "How many {p} does this pcb have?", "Give me the count of {p}.",
                    "Please count the {p}.", "How many {p} are on this panel?", "{s} count?"],
    "count_total": ["How many defects are there?", "Count all defects.", "How many defects does this board have?",
                    "What is the total number of defects?", "Number of defects?", "How many faults are on this pcb?",
                    "Count the defects please.", "How many problems can you find?", "Total defect count?",
                    "How many flaws does this panel have?"],
    "describe": ["Describe all defects on this board.", "What defects do you see?", "List every defect.",
                 "Inspect this board.", "What is wrong with this board?", "Show me all defects.",
                 "Find all faults on this pcb.", "Any defects?", "Is this board defect free?",
                 "Check this board for defects.", "Report every flaw.", "What problems does this panel have?",
                 "Are there any defects on this board?", "Please inspect the pcb.", "Where are the defects?",
                 "List the faults you can see."],
    "spatial": ["Any defects in the {a}?", "What defects are in the {a} area?", "List the defects in the {a} of the board.",
                "Is there anything wrong in the {a}?", "Show the defects in the {a}.", "What is in the {a}?",
                "Check the {a} for defects.", "Are there faults in the {a} region?", "Inspect the {a} only.",
                "Find defects in the {a} of this pcb."],
    "spatial_class": ["Any {p} in the {a}?", "Where are the {p} in the {a}?", "How many {p} are in the {a}?",
                      "Is there a {s} in the {a}?", "Show the {p} in the {a} area.", "Count the {p} in the {a}."],
    "multi": ["Any {p} or {p2}?", "Are there {p} or {p2}?", "Where are the {p} and {p2}?", "Find {p} and {p2}.",
              "Check for {p} or {p2}.", "How many {p} and {p2} are there?", "Show me the {p} and the {p2}.",
              "Is the board free of {p} and {p2}?"],
}
COUNT_WORDS = ("how many", "count", "number")
"""A question with one of these asks for a count (spatial_class and multi phrasings mix both)."""
