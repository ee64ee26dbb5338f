"""A word-level tokenizer made offline, carrying Qwen's exact special-token strings.

The small default model learns from scratch, so a closed vocabulary of the words
inspectors use (plus the grammar, region and score tokens) trains far faster than
a byte-level BPE. Unknown words map to [UNK]; the class words (the product line's,
`cfg.line.words`) are what matter. Before
tokenizing, `normalize` spells out contractions and mends a typo in a word it does not know
when one known word is a single edit away ("shrot" -> "short").
"""
from __future__ import annotations

import re

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from components.line import Words
from components.qa.grammar import AREA_TOKENS, IN, NONE2, OFF, OUT
from components.qa.vocab import (
    AREAS,
    CONTRACTIONS,
    FILLER,
    FILLER_PHRASES,
    FRAMES,
    ITEM_WORDS,
    LEADS,
    NON_DEFECTS,
    OUT_OF_SCOPE,
    PHRASINGS,
)

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|box_start|>", "<|box_end|>"]
GRAMMAR = ["[COUNT]", "[DEFECT]", "[BOX]", "[CENTER]", "[CONF]", "[NONE]", "[EOF]", "[ASK]", "[YES]", "[NO]",
           OFF, NONE2, IN, OUT]
SCORE_BINS = 10
SCORE_TOKENS = [f"s{i}" for i in range(SCORE_BINS)]
CHAT_WORDS = ["system", "user", "assistant", "you", "are", "a", "helpful", "question", "none", "all", "count", "list"]

# Keeps `<think>`-style and Qwen special strings out; splits punctuation off words.
PUNCTUATION = "?.,!:;()"
_PUNCT = f"[{re.escape(PUNCTUATION)}]"
MIN_MENDED_LEN = 5
"""Words shorter than this are never taken for typos (too many near neighbours)."""


def score_token(score: float) -> str:
    """The evidence bucket the language model sees for a region: s0 .. s9."""
    return f"s{min(int(score * SCORE_BINS), SCORE_BINS - 1)}"


def words_of(text: str) -> list[str]:
    return re.sub(_PUNCT, lambda m: f" {m.group(0)} ", text.lower()).split()


def normalize(text: str, words: set[str] | None = None) -> str:
    """Lower case and contractions spelled out; given the known `words`, a hyphenated word
    whose parts are known is split ("short-circuit", "lower-left"), and any other unknown word of
    MIN_MENDED_LEN letters or more becomes the known word a single edit away (Damerau-
    Levenshtein: a letter added, dropped, changed or two swapped; the closest by similarity
    when several are), so "shrot" reads as "short"."""
    out: list[str] = []
    for w in words_of(text):
        w = CONTRACTIONS.get(w, w)
        parts = w.split("-")
        if words is not None and len(parts) > 1 and all(p in words for p in parts):
            w = " ".join(parts)  # "lower-left" reads as the common "lower left"
        elif words is not None and w not in words:
            w = _mend(w, words)
        out.append(w)
    return " ".join(out)


def _mend(word: str, words: set[str]) -> str:
    from rapidfuzz import fuzz
    from rapidfuzz.distance import DamerauLevenshtein

    if len(word) < MIN_MENDED_LEN:
        return word
    near = [k for k in words if abs(len(k) - len(word)) <= 1 and DamerauLevenshtein.distance(word, k) == 1]
    return max(sorted(near), key=lambda k: fuzz.ratio(word, k)) if near else word


def vocabulary(classes: tuple[str, ...], class_words: Words, max_regions: int, max_count: int = 64,
               items: tuple[str, ...] = ITEM_WORDS) -> list[str]:
    """The closed vocabulary: special, grammar and class tokens, and every word of the questions
    (the line's class words and items, areas, phrasings, everyday requests), region and score tokens."""
    words: set[str] = set(CHAT_WORDS) | set(classes) | set(AREA_TOKENS) | set(FILLER) | set(words_of(" ".join(items)))
    for phrasings in PHRASINGS.values():
        for t in phrasings:
            words.update(words_of(t.format(s="", p="", p2="", a="")))
    for pairs in class_words.values():
        for s, p in pairs:
            words.update(words_of(f"{s} {p}"))
    for names in AREAS.values():
        for a in names:
            words.update(words_of(a))
    for q in OUT_OF_SCOPE + FILLER_PHRASES + LEADS + [f.format(q="") for f in FRAMES]:
        words.update(words_of(q))
    for s, p in NON_DEFECTS:
        words.update(words_of(f"{s} {p}"))
    for long in CONTRACTIONS.values():
        words.update(long.split())
    words.update(PUNCTUATION)
    words.update(str(i) for i in range(max_count + 1))
    words.update(f"R{i + 1}" for i in range(max_regions))
    words.update(SCORE_TOKENS)
    return ["[PAD]", "[UNK]"] + QWEN_SPECIAL + GRAMMAR + sorted(words - set(GRAMMAR))


def plain_words(tokenizer) -> set[str] | None:
    """The known words of a word-level tokenizer (for `normalize`); None for a subword one
    (a real checkpoint's BPE reads any spelling itself)."""
    from tokenizers.models import WordLevel

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, WordLevel):
        return None
    return {w for w in tokenizer.get_vocab() if re.fullmatch(r"[a-z][a-z'-]*", w)}


def build_tokenizer(classes: tuple[str, ...], class_words: Words, max_regions: int,
                    chat_template: str, items: tuple[str, ...] = ITEM_WORDS) -> PreTrainedTokenizerFast:
    """A fast tokenizer over the closed vocabulary, with Qwen's special tokens and chat template."""
    vocab = {w: i for i, w in enumerate(vocabulary(classes, class_words, max_regions, items=items))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PUNCT), behavior="isolated"),
        pre_tokenizers.WhitespaceSplit(),
    ])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|im_end|>",
        bos_token=None, additional_special_tokens=QWEN_SPECIAL, clean_up_tokenization_spaces=False,
    )
    fast.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL})
    fast.chat_template = chat_template
    return fast
