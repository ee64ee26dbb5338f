"""Stage 2: supervised fine-tuning of the language model with trl's SFTTrainer.

The default model's language side starts from random weights, so it is trained in
full (LoRA adapts existing knowledge; there is none yet). With a real checkpoint
(`model.base`), set `train.sft_lora=true` and a peft LoRA adapter is trained instead.
The vision tower stays frozen either way, so the spatial branch keeps its accuracy.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from components.config import TrainConfig
from components.train.lm_common import LogTo, common_args, to_dataset, freeze_vision, last_checkpoint, lora_config


def train_sft(vlm, rows: list[dict], cfg: TrainConfig, out_dir: Path,
              on_log: Callable[[int, dict], None] | None = None) -> dict:
    """Train vlm.model in place on prompt-completion rows; returns loss and timing."""
    from trl import SFTConfig, SFTTrainer

    freeze_vision(vlm.model)
    steps = min(cfg.sft_max_steps, max(1, int(cfg.sft_epochs * len(rows) / cfg.sft_batch)))
    args = SFTConfig(**common_args(cfg, out_dir, steps, cfg.sft_batch, cfg.sft_lr), completion_only_loss=True)
    trainer = SFTTrainer(model=vlm.model, args=args, train_dataset=to_dataset(rows),
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
