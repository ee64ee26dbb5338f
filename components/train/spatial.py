"""Stage 1: train the vision encoder and its spatial head (the coordinate branch).

The language model is untouched here; it learns later (SFT, DPO) to refer to the
head's candidates. Time-boxed: runs until `spatial_minutes` or `spatial_max_epochs`,
checkpointing every minute so a killed run resumes where it stopped.
"""
from __future__ import annotations

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
    """Train until the time budget is spent; returns the last losses and counters."""
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
    budget = cfg.spatial_minutes * 60
    steps_per_epoch = len(data) // cfg.spatial_batch
    vlm.train()
    start, last_ckpt = time.time() - spent, time.time()
    bar = tqdm(total=int(budget), desc="spatial branch", unit="s", initial=int(spent))
    losses: dict = {}
    while epoch < cfg.spatial_max_epochs and time.time() - start < budget:
        for imgs, boxes, labels in batches(data, list(range(len(data))), cfg.spatial_batch, rng, augment=True):
            losses = _step(vlm, opt, imgs, boxes, labels, cfg, step, budget, time.time() - start)
            step += 1
            bar.n = min(int(time.time() - start), int(budget))
            bar.set_postfix(step=step, epoch=epoch, loss=f"{losses['loss']:.3f}", heat=f"{losses['heat']:.3f}")
            if on_log and step % 20 == 0:
                on_log(step, {f"spatial_{k}": v for k, v in losses.items()})
            if time.time() - last_ckpt > CHECKPOINT_EVERY_S:
                checkpoint.save(work, _state(vlm, opt, step, epoch, time.time() - start))
                last_ckpt = time.time()
            if time.time() - start >= budget:
                break
        else:
            epoch += 1
    bar.close()
    checkpoint.save(work, _state(vlm, opt, step, epoch, time.time() - start))
    vlm.eval()
    return {"steps": step, "epochs": epoch, "minutes": (time.time() - start) / 60, "steps_per_epoch": steps_per_epoch,
            **{f"final_{k}": v for k, v in losses.items()}}


def _step(vlm, opt, imgs, boxes, labels, cfg: TrainConfig, step: int, budget: float, elapsed: float) -> dict:
    # Cosine decay over the time budget, since the step count is unknown in advance.
    frac = min(elapsed / budget, 1.0)
    for g in opt.param_groups:
        g["lr"] = cfg.spatial_lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(frac * torch.pi)).item()))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        out = vlm.spatial(imgs)
    tgt = build_targets(boxes, labels, len(vlm.meta.classes), (vlm.grid, vlm.grid), vlm.stride)
    losses = head_loss(out, tgt)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(trainable(vlm), 5.0)
    opt.step()
    return {k: float(v) for k, v in losses.items()}
