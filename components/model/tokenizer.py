"""A word-level tokenizer made offline, carrying Qwen's exact special-token strings.

The small default model learns from scratch, so a closed vocabulary of the words
inspectors use (plus the grammar, region and score tokens) trains far faster than
a byte-level BPE. Unknown words map to [UNK]; the class words are what matter.
"""
from __future__ import annotations

import re

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from components.qa.generate import NAMES, QUADRANTS, TEMPLATES

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|box_start|>", "<|box_end|>"]
GRAMMAR = ["[COUNT]", "[DEFECT]", "[BOX]", "[CENTER]", "[CONF]", "[NONE]", "[EOF]", "[ASK]", "[YES]", "[NO]"]
SCORE_BINS = 10
QUADRANT_TOKENS = list(QUADRANTS)
SCORE_TOKENS = [f"s{i}" for i in range(SCORE_BINS)]
CHAT_WORDS = ["system", "user", "assistant", "you", "are", "a", "helpful", "question", "none", "all", "count", "list"]

# Keeps `<think>`-style and Qwen special strings out; splits punctuation off words.
_PUNCT = r"[?.,!:;()]"


def score_token(score: float) -> str:
    """The evidence bucket the language model sees for a region: s0 .. s9."""
    return f"s{min(int(score * SCORE_BINS), SCORE_BINS - 1)}"


def words_of(text: str) -> list[str]:
    return re.sub(_PUNCT, lambda m: f" {m.group(0)} ", text.lower()).split()


def vocabulary(classes: tuple[str, ...], max_regions: int, max_count: int = 64) -> list[str]:
    words: set[str] = set(CHAT_WORDS) | set(classes) | set(QUADRANTS)
    for kind_templates in TEMPLATES.values():
        for t in kind_templates:
            words.update(words_of(t.format(s="", p="", q="")))
    for pairs in NAMES.values():
        for s, p in pairs:
            words.update(words_of(f"{s} {p}"))
    for q in QUADRANTS.values():
        words.update(words_of(q))
    words.update(list("?.,!:;()"))
    words.update(str(i) for i in range(max_count + 1))
    words.update(f"R{i + 1}" for i in range(max_regions))
    words.update(SCORE_TOKENS)
    return ["[PAD]", "[UNK]"] + QWEN_SPECIAL + GRAMMAR + sorted(words - set(GRAMMAR))


def build_tokenizer(classes: tuple[str, ...], max_regions: int, chat_template: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer over the closed vocabulary, with Qwen's special tokens and chat template."""
    vocab = {w: i for i, w in enumerate(vocabulary(classes, max_regions))}
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
