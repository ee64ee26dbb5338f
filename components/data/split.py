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


def _new_groups_by_drop(samples: list[Sample]) -> list[list[str]]:
    """The groups each drop (accepted month, oldest first) brings that no earlier one had."""
    first: dict[str, str] = {}
    for s in sorted(samples, key=lambda s: s.month):
        first.setdefault(s.group, s.month)
    months = sorted(set(first.values()))
    return [sorted(g for g, m in first.items() if m == month) for month in months]


def _share_of(n: int, share: float) -> int:
    """How many of n groups a share is: rounded half up, so one group of a 0.2 share is none."""
    return int(share * n + 0.5)


def _drop_split(groups: list[str], cfg: Config, hashed_calib: bool) -> dict[str, str]:
    """Listed groups go to their split; of the drop's unlisted groups, lowest hash first, enough
    are held out that holdout_share of the drop's groups is (listed ones count), then (hashed_calib)
    calib_share calibrates; the rest train."""
    d = cfg.data
    out = {g: "eval" if g in d.holdout_groups else "calib" if g in d.calib_groups else "" for g in groups}
    unlisted = sorted((g for g in groups if not out[g]), key=group_hash_share)
    n_eval = max(0, _share_of(len(groups), d.holdout_share) - sum(v == "eval" for v in out.values()))
    n_calib = _share_of(len(groups), d.calib_share) if hashed_calib else 0
    for i, g in enumerate(unlisted):
        out[g] = "eval" if i < n_eval else "calib" if i < n_eval + n_calib else "train"
    return out


def group_splits(samples: list[Sample], cfg: Config) -> dict[str, str]:
    """Each group's split, decided by the drop that first brought it: a group held out stays held
    out in every later month, and the held-out set the gate judges is the union held out so far.

    A drop of one group (0.2 of one rounds to none) trains on it: new boards are what a month
    is for. A line whose drops hold none of the listed calibration groups (steel's, while
    params.yaml lists DeepPCB's) calibrates on calib_share of its groups instead of on none."""
    hashed_calib = not {s.group for s in samples} & set(cfg.data.calib_groups)
    out: dict[str, str] = {}
    for groups in _new_groups_by_drop(samples):
        out.update(_drop_split(groups, cfg, hashed_calib))
    return out


def split_samples(samples: list[Sample], cfg: Config) -> dict[str, list[Sample]]:
    """{'train': [...], 'calib': [...], 'eval': [...]}; each group lands in exactly one split
    (group_splits)."""
    where = group_splits(samples, cfg)
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for s in samples:
        out[where[s.group]].append(s)
    return out


def split_groups(samples: list[Sample], cfg: Config) -> dict[str, list[str]]:
    """Which groups went where, for logging."""
    return {k: sorted({s.group for s in v}) for k, v in split_samples(samples, cfg).items()}
