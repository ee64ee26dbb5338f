"""Leave-one-group-out folds over the accepted groups: what a user whose boards look like none
of the training groups gets, measured per group (`defectqa crossval`, flows/crossval.py).

A fold holds out one whole group (its evaluation set, never trained on) and calibrates on
another (the configured calibration group, or, when that one is held out or absent, the first
other accepted group in name order); it trains on every other group. Nothing else of the
config changes, so a fold's figures are those `make run` would have with that group held out.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from components.config import Config, apply
from components.evaluation.columns import COLUMNS

SUMMARY = "summary.json"
TABLE = "summary.md"


def calib_group(cfg: Config, held_out: str, groups: list[str]) -> str:
    """The fold's calibration group: the configured one when it is there and not held out."""
    if len(set(groups)) < 3:  # one is held out, one calibrates, at least one trains
        raise ValueError(f"leave-one-group-out needs at least 3 accepted groups, got {sorted(groups)}")
    listed = [g for g in cfg.data.calib_groups if g in groups and g != held_out]
    return (listed or [g for g in sorted(groups) if g != held_out])[0]


def fold_config(cfg: Config, held_out: str, groups: list[str]) -> Config:
    """cfg with exactly `held_out` as the evaluation group and one calibration group (no group
    goes to either by hash)."""
    if held_out not in groups:
        raise ValueError(f"group {held_out!r} is not among the accepted groups ({', '.join(sorted(groups))})")
    fold = copy.deepcopy(cfg)
    apply(fold, "data.holdout_groups", (held_out,))
    apply(fold, "data.calib_groups", (calib_group(cfg, held_out, groups),))
    apply(fold, "data.holdout_share", 0.0)
    apply(fold, "data.calib_share", 0.0)
    apply(fold, "train.warm_start", "")  # a champion, or any month's model, may have trained on the held-out group
    return fold


def table(folds: dict[str, dict]) -> str:
    """Markdown: one row per held-out group (its metrics and gate verdict), then the worst of each
    column over the groups (the lowest of a higher-is-better figure, the highest of the others)."""
    cols = [c for c in COLUMNS if any(c.key in f["metrics"] for f in folds.values())]
    head = "| group | gate | " + " | ".join(c.header for c in cols) + " |\n|---|---|" + "---|" * len(cols)
    rows = [f"| {g} | {'pass' if f['gate_passed'] else 'FAIL'} | "
            + " | ".join(c.cell(f["metrics"].get(c.key), 3) for c in cols) + " |" for g, f in folds.items()]
    worst = [_worst(c, [f["metrics"].get(c.key) for f in folds.values()]) for c in cols]
    rows.append("| worst | | " + " | ".join(c.cell(w, 3) for c, w in zip(cols, worst, strict=True)) + " |")
    return "\n".join([head, *rows])


def _worst(col, values: list):
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    if not vals or col.higher_is_better is None:
        return None
    return min(vals) if col.higher_is_better else max(vals)


def write_summary(out: Path, folds: dict[str, dict], meta: dict) -> str:
    """summary.json (every fold's metrics, verdict, run folder; meta: dataset version, command, skipped)
    and summary.md (the table); returns the table."""
    out.mkdir(parents=True, exist_ok=True)
    text = table(folds) if folds else "(no fold finished)"
    (out / SUMMARY).write_text(json.dumps({**meta, "folds": folds}, indent=2, default=str))
    (out / TABLE).write_text(text + "\n")
    return text
