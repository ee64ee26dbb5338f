"""Resume support for the hand-written spatial training loop (trl's trainers have their own)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

CKPT = "checkpoint.pt"


def save(folder: Path, state: dict) -> None:
    """Write atomically, so a kill during the write never leaves a broken checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CKPT + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / CKPT)


def load(folder: Path) -> dict | None:
    path = folder / CKPT
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None
