"""Train the wafer pattern branch, then fit its temperature on maps it did not train on.

Maps are drawn with weight count(label)^-balance_power so rare patterns (Near-full, Donut)
are seen often enough, and each is shown under a random flip / quarter turn: a wafer's
pattern does not change when it is turned, so the branch should not care.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from transformers import get_cosine_schedule_with_warmup

from components.config import WaferConfig
from components.data.split import group_hash_share
from components.data.wafer import WaferMap
from components.model.views import dihedral_maps
from components.model.wafer_pattern import PatternMeta, WaferPattern, render_batch


def calib_part(maps: list[WaferMap], share: float) -> tuple[list[WaferMap], list[WaferMap]]:
    """(train, calib): calib holds `share` of the maps, chosen by a stable hash of the id."""
    calib = [m for m in maps if group_hash_share(f"calib:{m.map_id}") < share]
    keep = {id(m) for m in calib}
    return [m for m in maps if id(m) not in keep], calib


def draw_weights(labels: list[str], power: float) -> torch.Tensor:
    counts = Counter(labels)
    return torch.tensor([counts[lb] ** -power for lb in labels], dtype=torch.float64)


def dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each map of the batch under one of the 8 flips / quarter turns."""
    k = torch.randint(0, 8, (x.shape[0],), generator=gen)
    out = torch.empty_like(x)
    for v in range(8):
        sel = k == v
        if sel.any():
            out[sel] = dihedral_maps(x[sel], v)
    return out


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, iters: int = 100) -> float:
    """The temperature minimising the calibration maps' negative log-likelihood."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=iters)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


@torch.no_grad()
def logits_of(model: WaferPattern, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model.view_logits(x[i:i + batch]) for i in range(0, len(x), batch)])


def train_pattern(maps: list[WaferMap], labels: tuple[str, ...], cfg: WaferConfig, log: Callable[[int, dict], None] | None = None,
                  device: str = "cpu") -> tuple[WaferPattern, dict]:
    """The trained, calibrated branch (on the CPU) and a summary (maps, loss, temperature, seconds)."""
    """`labels`: the line's (data.classes), "None" among them."""
    unknown = sorted({m.label for m in maps} - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} are not the line's labels {list(labels)}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, calib = calib_part(maps, cfg.calib_share)
    if not train or not calib:
        raise ValueError(f"{len(maps)} maps leave {len(train)} to train on and {len(calib)} to calibrate on "
                         f"(wafer.calib_share {cfg.calib_share})")
    index = {lb: i for i, lb in enumerate(labels)}
    meta = PatternMeta(labels=list(labels), input_size=cfg.input_size, patch_size=cfg.patch_size,
                       vision_hidden=cfg.vision_hidden, vision_depth=cfg.vision_depth,
                       vision_heads=cfg.vision_heads, head_channels=cfg.head_channels, views=cfg.views)
    model = WaferPattern(meta).to(device)
    x = render_batch([m.grid for m in train], cfg.input_size).half()  # half: 37k maps in under 1 GB
    y = torch.tensor([index[m.label] for m in train])
    weights = draw_weights([m.label for m in train], cfg.balance_power)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = get_cosine_schedule_with_warmup(opt, max(1, int(cfg.warmup_share * cfg.steps)), cfg.steps)
    start, losses = time.perf_counter(), []
    model.train()
    for step in range(cfg.steps):
        pick = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen)
        loss = F.cross_entropy(model(dihedral(x[pick].float(), gen).to(device)), y[pick].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
        if log and (step + 1) % 100 == 0:
            log(step + 1, {"wafer_loss": float(np.mean(losses[-100:]))})
    calib_x = render_batch([m.grid for m in calib], cfg.input_size)
    calib_y = torch.tensor([index[m.label] for m in calib])
    model = model.cpu()
    model.meta.temperature = fit_temperature(logits_of(model, calib_x), calib_y)
    summary = {"train_maps": len(train), "calib_maps": len(calib), "final_loss": float(np.mean(losses[-100:])),
               "temperature": model.meta.temperature, "train_s": time.perf_counter() - start}
    return model.eval(), summary
