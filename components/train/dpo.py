"""Stage 3: preference tuning with trl's DPOTrainer on (chosen, rejected) answers.

Rejected answers invent a defect, misplace one, miss one or give a confident wrong
class. A peft LoRA adapter is trained on the language model, so DPO's reference
model is the same weights with the adapter switched off (no second copy in memory);
the adapter is merged afterwards so serving sees one plain model.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from components.config import TrainConfig
from components.train.lm_common import LogTo, common_args, freeze_vision, last_checkpoint, lora_config, to_dataset


def train_dpo(vlm, rows: list[dict], cfg: TrainConfig, out_dir: Path,
              on_log: Callable[[int, dict], None] | None = None) -> dict:
    """DPO on vlm.model in place (LoRA, then merged); returns loss, reward margin, timing."""
    from trl import DPOConfig, DPOTrainer

    freeze_vision(vlm.model)
    args = DPOConfig(**common_args(cfg.seed, out_dir, cfg.dpo_max_steps, cfg.dpo_batch, cfg.dpo_lr), beta=cfg.dpo_beta)
    trainer = DPOTrainer(model=vlm.model, args=args, train_dataset=to_dataset(rows),
                         processing_class=vlm.processor, peft_config=lora_config(cfg),
                         callbacks=[LogTo(on_log, "dpo")])
    start = time.time()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir))
    margins = [h["rewards/margins"] for h in trainer.state.log_history if "rewards/margins" in h]
    vlm.model = trainer.model.merge_and_unload()
    vlm.model.eval()
    return {"dpo_steps": cfg.dpo_max_steps, "dpo_loss": float(result.training_loss),
            "dpo_reward_margin": float(margins[-1]) if margins else float("nan"),
            "dpo_minutes": (time.time() - start) / 60}
