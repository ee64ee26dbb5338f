"""Stage 1: train the vision encoder and its spatial head (the coordinate branch).

The language model is untouched here; it learns later (SFT, DPO) to refer to the
head's candidates. Runs `spatial_steps` steps (stopping early at `spatial_minutes` or
`spatial_max_epochs`), checkpointing every minute so a killed run resumes where it stopped.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from components.config import TrainConfig
from components.model.spatial_head import build_targets, head_loss
from components.model.vlm import DefectVLM
from components.train import checkpoint
from components.train.images import FusedSet, batches

CHECKPOINT_EVERY_S = 60.0


def trainable(vlm: DefectVLM) -> list[torch.nn.Parameter]:
    """Vision blocks + head; the merger only feeds the language model, so it stays out."""
    vis = vlm.model.model.visual
    params = [p for n, p in vis.named_parameters() if not n.startswith(("merger", "deepstack"))]
    return params + list(vlm.head.parameters())


def _state(vlm, opt, step, epoch, elapsed) -> dict:
    return {"visual": vlm.model.model.visual.state_dict(), "head": vlm.head.state_dict(),
            "opt": opt.state_dict(), "step": step, "epoch": epoch, "elapsed": elapsed}


def train_spatial(vlm: DefectVLM, data: FusedSet, cfg: TrainConfig, work: Path,
                  on_log: Callable[[int, dict], None] | None = None) -> dict:
    """Train for cfg.spatial_steps (or until a limit); returns the last losses and counters."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(trainable(vlm), lr=cfg.spatial_lr, weight_decay=1e-4)
    step, epoch, spent = 0, 0, 0.0
    if (ck := checkpoint.load(work)) is not None:
        vlm.model.model.visual.load_state_dict(ck["visual"])
        vlm.head.load_state_dict(ck["head"])
        opt.load_state_dict(ck["opt"])
        step, epoch, spent = ck["step"], ck["epoch"], ck["elapsed"]
        print(f"spatial: resuming from step {step} (epoch {epoch}, {spent / 60:.1f} min done)")
    limit = cfg.spatial_minutes * 60 or float("inf")
    steps_per_epoch = len(data) // cfg.spatial_batch
    vlm.train()
    start, last_ckpt = time.time() - spent, time.time()
    bar = tqdm(total=cfg.spatial_steps, desc="spatial branch", unit="step", initial=step)
    losses: dict = {}

    def out_of_time() -> bool:
        return time.time() - start >= limit

    while step < cfg.spatial_steps and epoch < cfg.spatial_max_epochs and not out_of_time():
        for imgs, boxes, labels in batches(data, list(range(len(data))), cfg.spatial_batch, rng, augment=True):
            losses = _step(vlm, opt, imgs, boxes, labels, cfg, step)
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{losses['loss']:.3f}", heat=f"{losses['heat']:.3f}")
            if on_log and step % 20 == 0:
                on_log(step, {f"spatial_{k}": v for k, v in losses.items()})
            if time.time() - last_ckpt > CHECKPOINT_EVERY_S:
                checkpoint.save(work, _state(vlm, opt, step, epoch, time.time() - start))
                last_ckpt = time.time()
            if step >= cfg.spatial_steps or out_of_time():
                break
        else:
            epoch += 1
    bar.close()
    checkpoint.save(work, _state(vlm, opt, step, epoch, time.time() - start))
    vlm.eval()
    return {"steps": step, "epochs": epoch, "minutes": (time.time() - start) / 60, "steps_per_epoch": steps_per_epoch,
            "stopped_by_time_limit": step < cfg.spatial_steps and out_of_time(),
            **{f"final_{k}": v for k, v in losses.items()}}


def _step(vlm, opt, imgs, boxes, labels, cfg: TrainConfig, step: int) -> dict:
    # Cosine decay to 5 % of the peak over the step budget.
    frac = min(step / max(cfg.spatial_steps, 1), 1.0)
    for g in opt.param_groups:
        g["lr"] = cfg.spatial_lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(frac * math.pi)))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        out = vlm.spatial(imgs)
    tgt = build_targets(boxes, labels, len(vlm.meta.classes), (vlm.grid, vlm.grid), vlm.stride)
    losses = head_loss(out, tgt)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(trainable(vlm), 5.0)
    opt.step()
    return {k: float(v) for k, v in losses.items()}
