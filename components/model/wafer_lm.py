"""The wafer line's language model: a small Qwen3 decoder (the text side of the Qwen3-VL family,
built from config) that reads the engineer's question beside the pattern branch's evidence and
writes its reading under a grammar (`qa/wafer_grammar.Reading`): what kind of question it is,
which pattern it asks about, and which pattern the answer says the map shows. It never writes
a number: counts, shares, location and shape are measured by code, confidences are the branch's.

The vocabulary is closed (a word-level tokenizer, as on the pcb line): the words of the training
phrasings, the line's pattern words, the labels, the reading's tokens and the buckets.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from components.model.tokenizer import _PUNCT, PUNCTUATION, QWEN_SPECIAL, normalize, words_of
from components.qa.vocab import CONTRACTIONS, FILLER, for_line
from components.qa.wafer_generate import prompt
from components.qa.wafer_grammar import ANS, NO_LABEL, OFF, READING_TOKENS, Reading
from components.qa.wafer_vocab import EMBELLISHMENTS, KINDS, NONE, OFF_KIND, OFF_PHRASINGS, PHRASINGS, SLOTS

META_FILE = "wafer_lm.json"


@dataclass
class LMMeta:
    labels: list[str]
    words: dict[str, list[list[str]]]
    items: list[str]
    hidden: int
    layers: int
    heads: int
    evidence_top: int
    score_bins: int
    kind_floor: float = 0.0
    """Below this probability of the likeliest kind a question reads as a pattern question
    (wafer.lm_kind_floor; 0 in a folder saved before it)."""


def vocabulary(meta: LMMeta) -> list[str]:
    """Special tokens, the reading's tokens, labels, buckets, then every word a training question uses."""
    known: set[str] = set(FILLER) | set(PUNCTUATION) | set(words_of(" ".join(meta.items)))
    for text in [q for qs in PHRASINGS.values() for q in qs] + OFF_PHRASINGS + EMBELLISHMENTS:
        known.update(words_of(for_line(text, meta.items).format(s="", p="", i="", q="", **{k: "" for k in SLOTS})))
    known.update(words_of(" ".join(w for words in SLOTS.values() for w in words)))
    for pairs in meta.words.values():
        for s, p in pairs:
            known.update(words_of(f"{s} {p}"))
    for long in CONTRACTIONS.values():
        known.update(long.split())
    fixed = ["[PAD]", "[UNK]"] + QWEN_SPECIAL + list(READING_TOKENS) + list(KINDS) + list(meta.labels)
    fixed += [f"s{i}" for i in range(meta.score_bins)]
    return fixed + sorted(known - set(fixed))


def build_tokenizer(meta: LMMeta) -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(vocabulary(meta))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_PUNCT), behavior="isolated"),
                                                 pre_tokenizers.WhitespaceSplit()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|im_end|>",
                                   clean_up_tokenization_spaces=False)


class WaferLM:
    def __init__(self, meta: LMMeta, model: Qwen3ForCausalLM | None = None):
        self.meta = meta
        self.tokenizer = build_tokenizer(meta)
        self.known = {w for w in self.tokenizer.get_vocab() if w.isalpha() and w.islower()}
        self.model = model or Qwen3ForCausalLM(Qwen3Config(
            vocab_size=len(self.tokenizer), hidden_size=meta.hidden, intermediate_size=4 * meta.hidden,
            num_hidden_layers=meta.layers, num_attention_heads=meta.heads, num_key_value_heads=meta.heads,
            head_dim=meta.hidden // meta.heads, max_position_embeddings=256, tie_word_embeddings=True,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id))
        ids = self.tokenizer.convert_tokens_to_ids
        self._kinds = ids(list(KINDS) + [OFF])
        self._asked = ids([lb for lb in meta.labels if lb != NONE] + [NO_LABEL])  # -: a name it does not know
        self._labels = ids(list(meta.labels))

    def prompt(self, question: str, probs: dict[str, float]) -> str:
        """What the model reads: the question normalised to its words, the branch's evidence, [ASK]."""
        return prompt(normalize(question, self.known), probs, self.meta.evidence_top, self.meta.score_bins)

    def read(self, question: str, probs: dict[str, float]) -> Reading:
        return self.read_batch([question], [probs])[0]

    @torch.no_grad()
    def read_batch(self, questions: list[str], probs: list[dict[str, float]], batch: int = 256) -> list[Reading]:
        """Each question's reading, decoded greedily under the grammar: a kind (or [OFF]); for
        presence the asked pattern (or `-`, a name it does not know), else `-`; then [ANS] and the decided label. The prompts of a
        batch are left-padded and decoded in step, so a batch reads as each prompt alone."""
        self.model.eval()
        out: list[Reading] = []
        for i in range(0, len(questions), batch):
            prompts = [self.prompt(q, p) for q, p in zip(questions[i:i + batch], probs[i:i + batch], strict=True)]
            out += self._read_prompts(prompts)
        return out

    def _read_prompts(self, prompts: list[str]) -> list[Reading]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
        ids, mask = enc.input_ids, enc.attention_mask
        kinds, ids, mask = self._pick(ids, mask, self._kinds, self.meta.kind_floor)
        presence = torch.tensor([k == "presence" for k in kinds])
        asked, ids, mask = self._pick(ids, mask, self._asked)
        ids[presence.logical_not(), -1] = self.tokenizer.convert_tokens_to_ids(NO_LABEL)  # other kinds ask none
        ids, mask = self._force(ids, mask, ANS)
        decided, _, _ = self._pick(ids, mask, self._labels)
        return [Reading(OFF_KIND) if k == OFF else Reading(k, a if k == "presence" and a != NO_LABEL else "", d)
                for k, a, d in zip(kinds, asked, decided, strict=True)]

    def _pick(self, ids: torch.Tensor, mask: torch.Tensor, allowed: list[int],
              floor: float = 0.0) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Per row the likeliest of the `allowed` tokens next, appended; with a `floor`, the first
        allowed token (the pattern kind) where the likeliest one's probability among them is below it."""
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each prompt starts at position 0
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, allowed]
        p = torch.softmax(logits, -1)
        best = torch.where(p.max(-1).values >= floor, p.argmax(-1), torch.zeros_like(p.argmax(-1)))
        chosen = torch.tensor(allowed)[best]
        return (self.tokenizer.convert_ids_to_tokens(chosen.tolist()), torch.cat([ids, chosen[:, None]], 1),
                torch.cat([mask, torch.ones_like(chosen)[:, None]], 1))

    def _force(self, ids: torch.Tensor, mask: torch.Tensor, token: str) -> tuple[torch.Tensor, torch.Tensor]:
        col = torch.full((len(ids), 1), self.tokenizer.convert_tokens_to_ids(token))
        return torch.cat([ids, col], 1), torch.cat([mask, torch.ones_like(col)], 1)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.model.save_pretrained(folder)
        (folder / META_FILE).write_text(json.dumps(asdict(self.meta), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> WaferLM:
        folder = Path(folder)
        if not (folder / META_FILE).exists():
            raise FileNotFoundError(f"{folder}: not a wafer language model folder (no {META_FILE})")
        meta = LMMeta(**json.loads((folder / META_FILE).read_text()))
        return cls(meta, Qwen3ForCausalLM.from_pretrained(folder, local_files_only=True).eval())

