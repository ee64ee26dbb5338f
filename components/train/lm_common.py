"""What trl's SFT and DPO stages share: freezing, LoRA, logging and resumable checkpoints."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from components.config import TrainConfig

# LoRA on the language model only: the vision tower and its spatial head are trained
# (or pre-trained) for localisation and must not drift while the text side learns.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def freeze_vision(model) -> None:
    """Freeze the vision encoder except its merger (the projection the language model reads)."""
    for name, p in model.model.visual.named_parameters():
        p.requires_grad = name.startswith("merger")


def lora_config(cfg: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules=LORA_TARGETS, task_type="CAUSAL_LM")


def common_args(seed: int, out_dir: Path, max_steps: int, batch: int, lr: float) -> dict:
    return dict(
        output_dir=str(out_dir), per_device_train_batch_size=batch, learning_rate=lr, max_steps=max_steps,
        lr_scheduler_type="cosine", warmup_steps=max(1, max_steps // 20), logging_steps=10, save_steps=50,
        save_total_limit=1, report_to=[], use_cpu=True, remove_unused_columns=False, max_length=None,
        dataloader_num_workers=0, seed=seed, bf16=False, disable_tqdm=False, save_only_model=False,
    )


def to_dataset(rows: list[dict]):
    """A datasets.Dataset whose `images` are decoded lazily from the saved PNG paths."""
    from datasets import Dataset, Image, List

    ds = Dataset.from_list(rows)
    pictures = rows and "images" in rows[0] and isinstance(rows[0]["images"][0], str)
    return ds.cast_column("images", List(Image())) if pictures else ds


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest trainer checkpoint in out_dir, so a killed run resumes from it."""
    return get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None


class LogTo(TrainerCallback):
    """Forward the trainer's loss logs to a plain callback (MLflow logging lives upstream)."""

    def __init__(self, fn: Callable[[int, dict], None] | None, prefix: str):
        self.fn, self.prefix = fn, prefix

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.fn and logs:
            nums = {f"{self.prefix}_{k}": float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            self.fn(state.global_step, nums)
