"""Stage 2: supervised fine-tuning of the language model with trl's SFTTrainer.

The default model's language side starts from random weights, so it is trained in
full (LoRA adapts existing knowledge; there is none yet). With a real checkpoint
(`model.base`), set `train.sft_lora=true` and a peft LoRA adapter is trained instead.
The vision tower stays frozen either way, so the spatial branch keeps its accuracy.

Only the tokens the model chooses at inference carry loss: what is asked (class or
all, count or list, the area) and each region's decision. Region descriptors are forced by the
decoder; learning to predict them would only spend capacity on the head's noise.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from components.config import TrainConfig
from components.model.tokenizer import SCORE_TOKENS
from components.qa.grammar import ASK, HEADER_LEN
from components.train.lm_common import LogTo, common_args, freeze_vision, last_checkpoint, lora_config, to_dataset


def decision_mask(labels: torch.Tensor, ask_id: int, score_ids: list[int]) -> torch.Tensor:
    """True where a label is a chosen token: the reading (the HEADER_LEN - 1 tokens after [ASK])
    and each one after a score bucket (the last token of a region's descriptor)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    for k in range(1, HEADER_LEN):
        keep[:, k:] |= labels[:, :-k] == ask_id
    after_score = torch.zeros_like(keep)
    after_score[:, 1:] = torch.isin(labels[:, :-1], torch.tensor(score_ids, device=labels.device))
    return keep | after_score


def _trainer_class():
    from trl import SFTTrainer

    class DecisionSFTTrainer(SFTTrainer):
        """SFTTrainer whose loss covers only the tokens the model decides (see module doc)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            tok = self.processing_class.tokenizer
            labels = inputs["labels"]
            keep = decision_mask(labels, tok.convert_tokens_to_ids(ASK), tok.convert_tokens_to_ids(SCORE_TOKENS))
            inputs["labels"] = labels.masked_fill(~keep, -100)
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=None)

    return DecisionSFTTrainer


def train_sft(vlm, rows: list[dict], cfg: TrainConfig, out_dir: Path,
              on_log: Callable[[int, dict], None] | None = None) -> dict:
    """Train vlm.model in place on prompt-completion rows; returns loss and timing."""
    from trl import SFTConfig

    freeze_vision(vlm.model)
    steps = min(cfg.sft_max_steps, max(1, int(cfg.sft_epochs * len(rows) / cfg.sft_batch)))
    args = SFTConfig(**common_args(cfg.seed, out_dir, steps, cfg.sft_batch, cfg.sft_lr), completion_only_loss=True)
    trainer = _trainer_class()(model=vlm.model, args=args, train_dataset=to_dataset(rows),
                               processing_class=vlm.processor, peft_config=lora_config(cfg) if cfg.sft_lora else None,
                               callbacks=[LogTo(on_log, "sft")])
    start = time.time()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir))
    model = trainer.model
    if cfg.sft_lora:
        model = model.merge_and_unload()
    vlm.model = model
    vlm.model.eval()
    return {"sft_steps": steps, "sft_loss": float(result.training_loss), "sft_minutes": (time.time() - start) / 60}
