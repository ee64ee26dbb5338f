"""Continual training (train.warm_start): a month's stages start from an earlier model's weights,
as a shorter fine-tune, instead of from scratch.

The spatial stage copies every weight of the earlier model (vision tower, spatial head,
refiner, language model) into the new one; its language model then reaches SFT already
trained, so the text-only warm-up is skipped. Every stage trains `warm_start_share` of its
steps at `warm_start_lr_share` of its peak learning rate (`scaled`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from components.config import TrainConfig
from components.model.vlm import DefectVLM

CHAMPION = "champion"
"""train.warm_start's value for "the line's current champion" (resolved by the callers that know
the registry: the monthly flow and `defectqa stage`)."""
SHAPE = ("classes", "input_size", "patch_size", "head_channels")
"""What a model's meta must share with the new one for its weights to fit."""


def scaled(t: TrainConfig) -> TrainConfig:
    """The training settings a stage uses: t itself when cold; warm, the steps and learning rates
    cut by their shares and no text-only warm-up."""
    if not t.warm_start:
        return t
    if t.warm_start == CHAMPION:
        raise ValueError("train.warm_start=champion must be resolved to the champion's model folder first "
                         "(the monthly flow and `defectqa stage` do; give a folder elsewhere)")
    if not (0 < t.warm_start_share <= 1 and 0 < t.warm_start_lr_share <= 1):
        raise ValueError(f"train.warm_start_share ({t.warm_start_share}) and train.warm_start_lr_share "
                         f"({t.warm_start_lr_share}) must be in (0, 1]")
    share, lr = t.warm_start_share, t.warm_start_lr_share

    def steps(n: int) -> int:
        return max(1, round(n * share))

    return dataclasses.replace(
        t, spatial_steps=steps(t.spatial_steps), spatial_minutes=t.spatial_minutes * share,
        refine_epochs=steps(t.refine_epochs), sft_max_steps=steps(t.sft_max_steps), dpo_max_steps=steps(t.dpo_max_steps),
        warmup_steps=0, spatial_lr=t.spatial_lr * lr, refine_lr=t.refine_lr * lr, sft_lr=t.sft_lr * lr,
        dpo_lr=t.dpo_lr * lr)


def load_weights(vlm: DefectVLM, folder: str | Path) -> None:
    """Copy every weight of the model in `folder` into vlm (built from the config); a clear error
    when that model has another shape."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"train.warm_start: {folder} is not a model folder")
    src = DefectVLM.load(folder, quantize=False)
    differ = [f"{k} {getattr(src.meta, k)} vs {getattr(vlm.meta, k)}" for k in SHAPE
              if getattr(src.meta, k) != getattr(vlm.meta, k)]
    if (src.refiner is None) != (vlm.refiner is None):
        differ.append("one has a refiner, the other not")
    try:
        if not differ:
            vlm.model.load_state_dict(src.model.state_dict())
            vlm.head.load_state_dict(src.head.state_dict())
            if vlm.refiner is not None:
                vlm.refiner.load_state_dict(src.refiner.state_dict())
    except RuntimeError as exc:  # a size mismatch: another vocabulary, refiner crop or width
        differ.append(str(exc).splitlines()[0])
    if differ:
        raise ValueError(f"train.warm_start: {folder} is a model of another shape ({'; '.join(differ)}); "
                         "start cold (train.warm_start='') or give a model of this config")
