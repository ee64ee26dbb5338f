"""Stage 2a: a text-only warm-up of the from-scratch language model.

A real checkpoint arrives knowing language; the embedded default does not. Its decisions
are rules over words: map the question to what is asked (a class, all, a quadrant; count
or list), then for each region compare its class, quadrant and score bucket with that.
Comparing two tokens far apart needs attention circuits that a 4-layer model from
scratch forms only after thousands of steps, and a multimodal step (a few hundred
picture tokens) costs ~2 s here. Without the picture a step costs ~0.1 s, so the
rules are learnt first on the very same prompts and scans with the picture left out,
and the multimodal SFT that follows only has to adapt them to the picture tokens.

Text positions keep their relative distances with or without a picture (rotary
positions), so what is learnt here carries over.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from components.config import TrainConfig
from components.line import Words
from components.model.tokenizer import PUNCTUATION, SCORE_TOKENS, words_of
from components.qa.grammar import ASK
from components.qa.vocab import AREAS, COUNT_WORDS, DEFECT_WORDS, NON_DEFECTS, OUT_OF_SCOPE
from components.train.sft import decision_mask


def text_only(rows: list[dict]) -> list[dict]:
    """SFT rows (prompt / completion chat messages) with the picture removed."""
    def strip(messages):
        return [{**m, "content": [c for c in m["content"] if c["type"] != "image"]} for m in messages]

    return [{"prompt": strip(r["prompt"]), "completion": r["completion"]} for r in rows]


def key_words(classes: tuple[str, ...], class_words: Words) -> set[str]:
    """The question words that say what is asked: class (the line's words), thing and area names,
    count and defect words. Word dropout never touches them."""
    names = [w for pairs in class_words.values() for pair in pairs for w in pair] + [w for pair in NON_DEFECTS for w in pair]
    areas = [a for v in AREAS.values() for a in v]
    words = {w for text in [*classes, *names, *areas, *COUNT_WORDS, *DEFECT_WORDS] for w in words_of(text.replace("-", " "))}
    return words | set(PUNCTUATION)


def modifiable_names(tok, class_words: Words) -> list[list[str]]:
    """The tokens of class names of two or more words whose last word names one class and no
    non-defect thing ("tiny hole", "stray copper", "solder bridge"): an inspector's word in
    front of it that training never saw ("small hole") still names that class, so word dropout
    may drop the words in front. Not "broken trace" ("trace" is also a short's)."""
    named: dict[str, set[str]] = defaultdict(set)
    tokens = {}
    for cls, pairs in [*class_words.items(), *(("not a defect", [pair]) for pair in NON_DEFECTS)]:
        for name in (n for pair in pairs for n in pair):
            tokens[name] = tok.tokenize(name)
            named[tokens[name][-1]].add(cls)
    return [t for t in tokens.values() if len(t) > 1 and len(named[t[-1]]) == 1]


def _modifiers(words: list[str], names: list[list[str]]) -> set[int]:
    """Positions in words of the leading words of every modifiable name they contain."""
    found = set()
    for name in names:
        for i in range(len(words) - len(name) + 1):
            if words[i:i + len(name)] == name:
                found.update(range(i, i + len(name) - 1))
    return found


def _question_span(tok, r: dict, p_ids: list[int]) -> range:
    """Positions of the question's words in the prompt ids (after the "question :" that opens them)."""
    text = next(c["text"] for c in r["prompt"][-1]["content"] if c["type"] == "text")
    q_ids = tok(text, add_special_tokens=False)["input_ids"]
    start = max(i for i in range(len(p_ids) - len(q_ids) + 1) if p_ids[i:i + len(q_ids)] == q_ids)
    return range(start + 2, start + len(q_ids))


def encode(processor, rows: list[dict], class_words: Words, classes: tuple[str, ...] = ()) -> list[tuple[torch.Tensor, ...]]:
    """(input_ids, labels, droppable, names_nothing) per row; labels keep only the decided tokens
    (see sft.decision_mask); droppable marks the question's words that are not key_words, and the
    words in front of a class name's last word where that word alone names the class
    (`modifiable_names`); names_nothing: the question holds no key word at all (no class, thing,
    area, count or defect word beyond those everyday requests use: "what is the weather today?")."""
    tok = processor.tokenizer
    ask, scores = tok.convert_tokens_to_ids(ASK), tok.convert_tokens_to_ids(SCORE_TOKENS)
    keys = set(tok.convert_tokens_to_ids(sorted(key_words(classes, class_words)))) | {tok.unk_token_id}
    # Key words an everyday request also uses ("the", "board", "how many") name nothing asked about.
    everyday = set(tok.convert_tokens_to_ids(sorted({w for q in OUT_OF_SCOPE for w in words_of(q)} | set(PUNCTUATION))))
    naming = keys - everyday - {tok.unk_token_id}
    names = modifiable_names(tok, class_words)
    out = []
    for r in rows:
        prompt = processor.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
        full = processor.apply_chat_template(r["prompt"] + r["completion"], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor(tok(full, add_special_tokens=False)["input_ids"])
        labels = ids.clone()
        labels[: len(p_ids)] = -100
        keep = decision_mask(labels[None], ask, scores)[0]
        droppable = torch.zeros_like(ids, dtype=torch.bool)
        span = _question_span(tok, r, p_ids)
        modifiers = {span[k] for k in _modifiers(tok.convert_ids_to_tokens([p_ids[i] for i in span]), names)}
        for i in span:
            droppable[i] = p_ids[i] not in keys or i in modifiers
        names_nothing = not any(p_ids[i] in naming for i in span)
        out.append((ids, labels.masked_fill(~keep, -100), droppable, names_nothing))
    return out


def word_dropout(ids: torch.Tensor, droppable: torch.Tensor, p: float, unk_id: int,
                 gen: torch.Generator) -> torch.Tensor:
    """ids with each droppable word made [UNK] at chance p: words the model has never seen then
    read as what they are, words that do not change what is asked."""
    hit = droppable & (torch.rand(ids.shape, generator=gen) < p)
    return ids.masked_fill(hit, unk_id)


def _batch(items: list[tuple[torch.Tensor, ...]], pad_id: int) -> dict:
    ids = pad_sequence([i for i, *_ in items], batch_first=True, padding_value=pad_id)
    labels = pad_sequence([lab for _, lab, *_ in items], batch_first=True, padding_value=-100)
    mask = pad_sequence([torch.ones_like(i) for i, *_ in items], batch_first=True, padding_value=0)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def length_batches(n_rows: int, lengths: list[int], batch: int, groups: int, rng: random.Random):
    """Endless batches of row indices: draw `groups` batches' worth of rows at random, sort them by
    length, cut them into batches, yield those in random order; again."""
    size = min(batch, n_rows)
    while True:
        pool = sorted(rng.sample(range(n_rows), min(size * groups, n_rows)), key=lambda i: lengths[i])
        chunks = [pool[k:k + size] for k in range(0, len(pool) - size + 1, size)]
        rng.shuffle(chunks)
        yield from chunks


def train_warmup(vlm, rows: list[dict], cfg: TrainConfig, class_words: Words,
                 on_log: Callable[[int, dict], None] | None = None, reading: list[dict] | None = None) -> dict:
    """Train the language model of vlm in place on text-only rows for cfg.warmup_steps; each step
    also takes the next cfg.warmup_reading_batch of `reading` (question + reading rows), in a
    batch of their own since they are far shorter. class_words: the line's (never dropped)."""
    model = vlm.model
    data = encode(vlm.processor, text_only(rows), class_words, vlm.meta.classes)
    extra = encode(vlm.processor, text_only(reading or []), class_words, vlm.meta.classes)
    params = [p for n, p in model.named_parameters() if "visual" not in n]
    opt = torch.optim.AdamW(params, lr=cfg.warmup_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.warmup_lr, total_steps=cfg.warmup_steps,
                                                pct_start=0.05)
    rng, gen = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    tok = vlm.processor.tokenizer

    def dropped(items):
        # A question that names nothing is read from words the model may never have seen ("can you
        # book me a room?"): it loses many more of them, so unknown words and no key word read as
        # "not about defects", never as the frame's defect question.
        return [(word_dropout(ids, drop, cfg.warmup_off_topic_word_dropout if nothing else cfg.warmup_word_dropout,
                              tok.unk_token_id, gen), labels)
                for ids, labels, drop, nothing in items]

    model.train()
    start, losses = time.time(), []
    n_extra = cfg.warmup_reading_batch if extra else 0
    order = length_batches(len(data), [len(ids) for ids, *_ in data], cfg.warmup_batch, cfg.warmup_length_groups, rng)
    for step in (bar := tqdm(range(1, cfg.warmup_steps + 1), desc="language warm-up", unit="step")):
        loss = model(**_batch(dropped([data[i] for i in next(order)]), tok.pad_token_id)).loss
        if n_extra:
            chunk = [extra[(step * n_extra + k) % len(extra)] for k in range(n_extra)]
            loss = loss + model(**_batch(dropped(chunk), tok.pad_token_id)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            recent = sum(losses[-50:]) / len(losses[-50:])
            bar.set_postfix(loss=f"{recent:.3f}")
            if on_log:
                on_log(step, {"warmup_loss": recent})
    model.eval()
    tail = losses[-50:]
    return {"warmup_steps": cfg.warmup_steps, "warmup_loss": sum(tail) / len(tail), "warmup_reading_rows": len(extra),
            "warmup_minutes": (time.time() - start) / 60}
