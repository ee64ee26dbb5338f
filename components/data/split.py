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


def split_of(group: str, cfg: Config, hashed_calib: bool = False) -> str:
    """'eval' for holdout groups, 'calib' for calibration groups; an unlisted group by its hash:
    eval under holdout_share, then (hashed_calib: no listed calibration group is present) calib
    under holdout_share + calib_share, else train."""
    if group in cfg.data.holdout_groups:
        return "eval"
    if group in cfg.data.calib_groups:
        return "calib"
    share = group_hash_share(group)
    if share < cfg.data.holdout_share:
        return "eval"
    return "calib" if hashed_calib and share < cfg.data.holdout_share + cfg.data.calib_share else "train"


def split_samples(samples: list[Sample], cfg: Config) -> dict[str, list[Sample]]:
    """{'train': [...], 'calib': [...], 'eval': [...]}; each group lands in exactly one split.
    A line whose drops hold none of the listed calibration groups (steel's, while params.yaml
    lists DeepPCB's) calibrates on calib_share of its groups instead of on none."""
    hashed_calib = not {s.group for s in samples} & set(cfg.data.calib_groups)
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for s in samples:
        out[split_of(s.group, cfg, hashed_calib)].append(s)
    return out


def split_groups(samples: list[Sample], cfg: Config) -> dict[str, list[str]]:
    """Which groups went where, for logging."""
    return {k: sorted({s.group for s in v}) for k, v in split_samples(samples, cfg).items()}
