"""Split accepted samples by whole board group into train / calib / eval.

Whole groups, never single images: boards of one group share layout, so an image
split would leak the evaluation boards into training.
"""
from __future__ import annotations

import hashlib

from components.config import Config
from components.data.records import Sample

SPLITS = ("train", "calib", "eval")


def load_accepted(cfg: Config, months: list[str] | None = None) -> list[Sample]:
    """Every accepted sample (of `months`, default all), with absolute file paths, oldest month first."""
    from components.data.validate import accepted_months, accepted_samples

    chosen = accepted_months(cfg) if months is None else months
    return [s for m in chosen for s in accepted_samples(cfg, m)]


def group_hash_share(group: str) -> float:
    """A stable number in [0, 1) for a group name (same on every machine and Python run)."""
    return int(hashlib.sha256(group.encode()).hexdigest()[:12], 16) / 16**12


def split_of(group: str, cfg: Config) -> str:
    """'eval' for holdout groups, 'calib' for calibration groups, else eval for ~holdout_share of groups by hash."""
    if group in cfg.data.holdout_groups:
        return "eval"
    if group in cfg.data.calib_groups:
        return "calib"
    return "eval" if group_hash_share(group) < cfg.data.holdout_share else "train"


def split_samples(samples: list[Sample], cfg: Config) -> dict[str, list[Sample]]:
    """{'train': [...], 'calib': [...], 'eval': [...]}; each group lands in exactly one split."""
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for s in samples:
        out[split_of(s.group, cfg)].append(s)
    return out


def split_groups(samples: list[Sample], cfg: Config) -> dict[str, list[str]]:
    """Which groups went where, for logging."""
    return {k: sorted({s.group for s in v}) for k, v in split_samples(samples, cfg).items()}
