"""QA and preference pairs of the wafer line, from each map's label and the pattern branch's
evidence on it.

A row's prompt is the question, then the branch's evidence `[EV] Center s8 Loc s1 None s0` (its
`top` most likely labels with their probability bucket), then `[ASK]`; its completion is the
reading the language model should write (`qa/wafer_grammar.Reading`): the kind the question
asks, the label it asks about, the pattern the map's label says. Presence questions ask about
the map's own pattern half of the time and about another one otherwise; "None" maps are asked
every kind too, and their reading decides None ("no systematic pattern").

The asked pattern's name is typed as engineers also type it: a word of it now and then new to
the model (`hide_name`), and on a share of presence questions a name the model cannot know at
all. Such a question still asks whether a pattern is there, but not which one: its reading asks
about no label (`-`), and the answer says the name is not one it knows and what the map shows
("... not a pattern name I know ...; the wafer shows an edge ring"). Reading it as the likeliest
pattern would answer "Yes, there is an edge ring" to "is there a bullseye?": a made-up yes.

Preference pairs (DPO) share the prompt and the right reading; the rejected one names a pattern
the map does not show: on a None map the branch's likeliest pattern (an invented pattern); where
the branch's likeliest label is wrong, that label (an overconfident wrong answer); otherwise
another pattern drawn at random (a wrong pattern).
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from components.qa.generate import embellish
from components.qa.vocab import for_line
from components.qa.wafer_grammar import ASK, EV, Reading
from components.qa.wafer_vocab import KEY_WORDS, KINDS, NONE, OFF_KIND, OFF_PHRASINGS, PHRASINGS, SLOTS, UNKNOWN_WORD

Words = dict[str, tuple[tuple[str, str], ...]]


def evidence(probs: dict[str, float], top: int, bins: int) -> str:
    """The branch's `top` likeliest labels, likeliest first, each with its bucket s0 .. s<bins-1>."""
    best = sorted(probs, key=lambda lb: -probs[lb])[:top]
    return " ".join([EV] + [f"{lb} s{min(int(probs[lb] * bins), bins - 1)}" for lb in best])


def prompt(question: str, probs: dict[str, float], top: int, bins: int) -> str:
    """`question` already normalised (`model/tokenizer.normalize`)."""
    return f"{question} {evidence(probs, top, bins)} {ASK}"


def completion(reading: Reading) -> str:
    """The reading after the prompt's [ASK], with its leading space: trainers join prompt and
    completion as text, and a word-level tokenizer would read "[ASK]count" as one unknown word."""
    return reading.text()[len(ASK):]


def ask(kind: str, asked: str, words: Words, items: Sequence[str], rng: random.Random,
        phrasings: dict[str, list[str]] = PHRASINGS) -> str:
    """One question of `kind` (about `asked` for presence), in a phrasing drawn from `phrasings`,
    its slots (wafer_vocab.SLOTS) filled at random."""
    pool = phrasings[kind] if kind in phrasings else OFF_PHRASINGS
    singular, plural = rng.choice(words[asked]) if asked else ("", "")
    fill = {k: rng.choice(v) for k, v in SLOTS.items()}
    return rng.choice(pool).format(s=singular, p=plural, i=rng.choice(list(items)), **fill)


def reading_for(kind: str, label: str, labels: Sequence[str], rng: random.Random) -> Reading:
    """The right reading of a `kind` question about a map labelled `label`."""
    if kind == OFF_KIND:
        return Reading(OFF_KIND)
    asked = ""
    if kind == "presence":
        patterns = [lb for lb in labels if lb != NONE]
        asked = label if label != NONE and rng.random() < 0.5 else rng.choice(patterns)
    return Reading(kind, asked, label)


def hide_name(pair: tuple[str, str], dropout: float, rng: random.Random) -> tuple[str, str]:
    """A pattern's (singular, plural) name with each word replaced by UNKNOWN_WORD at chance
    `dropout`, the same words in both forms and at least one word kept: a name the model knows
    only in part ("outer ring", "middle blob") is then read from the words it does know."""
    singular, plural = pair[0].split(), pair[1].split()
    drop = [rng.random() < dropout for _ in singular]
    if all(drop):
        drop[rng.randrange(len(drop))] = False
    if len(plural) != len(singular):
        return " ".join(UNKNOWN_WORD if d else w for w, d in zip(singular, drop, strict=True)), pair[1]
    return tuple(" ".join(UNKNOWN_WORD if d else w for w, d in zip(ws, drop, strict=True))
                 for ws in (singular, plural))


def as_typed(question: str, protected: set[str], items: Sequence[str], embellish_share: float, dropout: float,
             rng: random.Random) -> str:
    """The question as people also type it (`qa/generate.embellish` at chance embellish_share),
    then each word not in `protected` (KEY_WORDS, the asked pattern's name) replaced by a word the
    model does not know at chance `dropout`: a question's new words then read as unknown filler,
    and its kind is told by the words that say it."""
    if rng.random() < embellish_share:
        question = for_line(embellish(question, rng), tuple(items))
    return " ".join(w if w.lower().strip("?.,!:") in protected or rng.random() >= dropout else UNKNOWN_WORD
                    for w in question.split())


def qa_rows(labels_probs: Sequence[tuple[str, dict[str, float]]], words: Words, items: Sequence[str], per_map: int,
            off_share: float, top: int, bins: int, seed: int, normalize=lambda q: q, embellish_share: float = 0.0,
            dropout: float = 0.0, off_dropout: float = 0.0, name_dropout: float = 0.0,
            unknown_name_share: float = 0.0) -> list[dict]:
    """`per_map` rows per (label, branch probabilities) of a map: a kind drawn per row (OFF with
    probability off_share), its question phrased at random and typed as people do (`as_typed`;
    an off-topic one loses its words at chance off_dropout: a question of words the model never
    saw, naming no pattern, then reads as not about the map). A presence question's pattern name
    loses words at chance name_dropout (`hide_name`); at chance unknown_name_share it is a word
    the model does not know and the reading asks about no label (see the module doc)."""
    rng = random.Random(seed)
    labels = list(words)
    rows = []
    for index, (label, probs) in enumerate(labels_probs):
        for _ in range(per_map):
            kind = OFF_KIND if rng.random() < off_share else rng.choice(KINDS)
            reading = reading_for(kind, label, labels, rng)
            said, named = words, reading.asked  # named: the pattern the question's words name
            if named:
                if rng.random() < unknown_name_share:
                    said, reading = {named: ((UNKNOWN_WORD, UNKNOWN_WORD),)}, Reading(kind, "", label)
                else:
                    said = {named: (hide_name(rng.choice(words[named]), name_dropout, rng),)}
            protected = KEY_WORDS | {w for pair in said.get(named, ()) for w in " ".join(pair).split()}
            question = normalize(as_typed(ask(kind, named, said, items, rng), protected, items,
                                          embellish_share, off_dropout if kind == OFF_KIND else dropout, rng))
            rows.append({"prompt": prompt(question, probs, top, bins), "completion": completion(reading),
                         "kind": kind, "label": label, "map": index})
    return rows


def preference_rows(rows: Sequence[dict], labels_probs: Sequence[tuple[str, dict[str, float]]],
                    seed: int) -> list[dict]:
    """One (prompt, chosen, rejected) per QA row that decides a pattern (see the module doc)."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        if row["kind"] == OFF_KIND:
            continue
        label, probs = labels_probs[row["map"]]
        likeliest = sorted(probs, key=lambda lb: -probs[lb])
        if label == NONE:
            wrong, why = next(lb for lb in likeliest if lb != NONE), "invented"
        elif likeliest[0] != label:
            wrong, why = likeliest[0], "overconfident"
        else:
            wrong, why = rng.choice([lb for lb in probs if lb != label]), "wrong"
        chosen = row["completion"]
        rejected = chosen.replace(f" {label} [EOF]", f" {wrong} [EOF]")
        out.append({"prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "why": why})
    return out
