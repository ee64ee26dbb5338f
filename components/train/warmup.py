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
from collections.abc import Callable

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from components.config import TrainConfig
from components.model.tokenizer import SCORE_TOKENS
from components.qa.grammar import ASK
from components.train.sft import decision_mask


def text_only(rows: list[dict]) -> list[dict]:
    """SFT rows (prompt / completion chat messages) with the picture removed."""
    def strip(messages):
        return [{**m, "content": [c for c in m["content"] if c["type"] != "image"]} for m in messages]

    return [{"prompt": strip(r["prompt"]), "completion": r["completion"]} for r in rows]


def encode(processor, rows: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, labels) per row; labels keep only the decided tokens (see sft.decision_mask)."""
    tok = processor.tokenizer
    ask, scores = tok.convert_tokens_to_ids(ASK), tok.convert_tokens_to_ids(SCORE_TOKENS)
    out = []
    for r in rows:
        prompt = processor.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
        full = processor.apply_chat_template(r["prompt"] + r["completion"], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor(tok(full, add_special_tokens=False)["input_ids"])
        labels = ids.clone()
        labels[: len(p_ids)] = -100
        keep = decision_mask(labels[None], ask, scores)[0]
        out.append((ids, labels.masked_fill(~keep, -100)))
    return out


def _batch(items: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> dict:
    ids = pad_sequence([i for i, _ in items], batch_first=True, padding_value=pad_id)
    labels = pad_sequence([lab for _, lab in items], batch_first=True, padding_value=-100)
    mask = pad_sequence([torch.ones_like(i) for i, _ in items], batch_first=True, padding_value=0)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_warmup(vlm, rows: list[dict], cfg: TrainConfig,
                 on_log: Callable[[int, dict], None] | None = None) -> dict:
    """Train the language model of vlm in place on text-only rows for cfg.warmup_steps."""
    model = vlm.model
    data = encode(vlm.processor, text_only(rows))
    params = [p for n, p in model.named_parameters() if "visual" not in n]
    opt = torch.optim.AdamW(params, lr=cfg.warmup_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.warmup_lr, total_steps=cfg.warmup_steps,
                                                pct_start=0.05)
    rng = random.Random(cfg.seed)
    pad = vlm.processor.tokenizer.pad_token_id
    model.train()
    start, losses = time.time(), []
    for step in (bar := tqdm(range(1, cfg.warmup_steps + 1), desc="language warm-up", unit="step")):
        loss = model(**_batch(rng.sample(data, min(cfg.warmup_batch, len(data))), pad)).loss
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
    return {"warmup_steps": cfg.warmup_steps, "warmup_loss": sum(tail) / len(tail),
            "warmup_minutes": (time.time() - start) / 60}
