"""Refiner changes, measured on the leave-one-group-out folds: for each fold of a finished
`defectqa crossval`, retrain the fold's refiner (on the fold's own training groups and its own
spatial head) with the model / train settings given by --set, and score the regions it keeps on
the held-out group: class-aware F1 at eval.iou, class-agnostic F1 (found at all) and how many
defects it misnames. The language model is not run: regions are what it decides on, and on
unseen groups its misses are the refiner's misnames (the miss report, `defectqa misses`).

    .venv/bin/python benchmarks/refiner_folds.py --workdir W [--group G ...] [--set model.refine_crop=48]

W is the crossval workdir (`<W>/crossval/<version>/summary.json` names each fold's run folder).
--baseline also scores each fold's own trained refiner, as the run left it (no retraining).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from components.config import Config, load
from components.data.split import load_accepted, split_samples
from components.evaluation.crossval import SUMMARY, fold_config
from components.model.answers import match
from components.model.fuse import Frame, fuse, image_size
from components.model.refiner import Refiner, candidate_limit
from components.model.regions import propose
from components.model.vlm import DefectVLM
from components.pipeline import RunLayout
from components.qa.grammar import Detection
from components.train.images import FusedSet
from components.train.refine import Jitter, collect, train_refiner


def build_refiner(vlm: DefectVLM, cfg: Config) -> Refiner:
    m = cfg.model
    return Refiner(len(vlm.meta.classes), crop=m.refine_crop, context=m.refine_context, max_side=m.refine_max_side,
                   topology=m.refine_topology)


def retrain(vlm: DefectVLM, cfg: Config, train_samples: list) -> dict:
    """A new refiner for vlm, trained as the spatial stage trains it; returns its figures."""
    t = cfg.train
    data = FusedSet(train_samples, cfg.data.classes, cfg.model.input_size, t.spatial_template_share, t.seed,
                    t.spatial_no_template_share)
    torch.manual_seed(t.seed)
    vlm.refiner = build_refiner(vlm, cfg)
    examples = collect(vlm, vlm.refiner, data, vlm.meta.refiner["floor"], candidate_limit(vlm.meta.max_regions),
                       cfg.eval.iou, t.refine_views, t.seed, jitter=Jitter.from_config(t))
    del data
    figures = train_refiner(vlm.refiner, examples, t.refine_epochs, t.refine_batch, t.refine_lr, t.seed,
                            t.refine_box_weight)
    m = cfg.model
    vlm.meta.refiner.update(crop=m.refine_crop, context=m.refine_context, max_side=m.refine_max_side,
                            topology=m.refine_topology)
    return figures


def regions_of(vlm: DefectVLM, samples: list, batch: int = 8) -> list[list[Detection]]:
    """The regions of every board (with its template), raw scores."""
    out = []
    for i in range(0, len(samples), batch):
        part = samples[i:i + batch]
        pictures = np.stack([np.asarray(fuse(s.test_path, s.template_path, vlm.meta.input_size)) for s in part])
        out += propose(vlm, pictures, [Frame(*image_size(s.test_path), vlm.meta.input_size) for s in part])
    return out


def score(regions: list[list[Detection]], samples: list, iou: float, floors: dict[str, float] | None = None) -> dict:
    """Regions (those at or above their class's floor, when floors are given) against the boards' boxes."""
    tp = tp_any = n_pred = n_gt = 0
    confused: Counter = Counter()
    for s, regs in zip(samples, regions, strict=True):
        regs = [r for r in regs if r.conf >= floors[r.cls]] if floors else regs
        n_pred, n_gt = n_pred + len(regs), n_gt + len(s.boxes)
        tp += len(match(regs, s.boxes, iou))
        pairs = match([Detection("any", r.box, r.conf) for r in regs], [dataclasses.replace(b, cls="any") for b in s.boxes],
                      iou)
        tp_any += len(pairs)
        confused.update(f"{s.boxes[g].cls}->{regs[p].cls}" for p, g in pairs if regs[p].cls != s.boxes[g].cls)
    f1 = lambda t: 2 * t / max(1, n_pred + n_gt)  # noqa: E731
    return {"f1": f1(tp), "f1_any": f1(tp_any), "recall": tp / max(1, n_gt), "precision": tp / max(1, n_pred),
            "misnamed": tp_any - tp, "defects": n_gt, "confusions": dict(confused.most_common(6))}


def fit_floors(regions: list[list[Detection]], samples: list, iou: float, classes: list[str],
               grid: np.ndarray) -> dict[str, float]:
    """Per class, the floor of `grid` with the best F1 of that class alone on these boards."""
    floors = {}
    for c in classes:
        mine = [[r for r in regs if r.cls == c] for regs in regions]
        theirs = [dataclasses.replace(s, boxes=[b for b in s.boxes if b.cls == c]) for s in samples]
        best = max(grid, key=lambda f: (score(mine, theirs, iou, dict.fromkeys(classes, f))["f1"], -f))
        floors[c] = float(best)
    return floors


def class_floor_figures(vlm: DefectVLM, splits: dict, cfg: Config) -> dict:
    """Floors per class fitted on the calibration boards, and the held-out score with them (the
    regions are made at the lowest floor of the grid, then each class is cut at its own)."""
    grid = np.round(np.arange(cfg.model.refine_floor, 0.5, 0.025), 3)
    global_floor, vlm.meta.region_floor = vlm.meta.region_floor, float(grid[0])
    try:
        calib = regions_of(vlm, splits["calib"])
        held = regions_of(vlm, splits["eval"])
    finally:
        vlm.meta.region_floor = global_floor
    floors = fit_floors(calib, splits["calib"], cfg.eval.iou, list(vlm.meta.classes), grid)
    return {"floors": floors, **{k: v for k, v in score(held, splits["eval"], cfg.eval.iou, floors).items()
                                 if k in ("f1", "recall", "precision", "misnamed")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a crossval workdir with finished folds")
    parser.add_argument("--group", action="append", default=[], help="fold(s) to measure (default: every fold)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override of the retrained refiner, e.g. model.refine_crop=48")
    parser.add_argument("--baseline", action="store_true", help="score the folds' own refiners, no retraining")
    parser.add_argument("--class-floors", action="store_true",
                        help="also fit a floor per class on the fold's calibration boards and score with them")
    args = parser.parse_args()
    cfg = load("params.yaml", [f"paths.workdir={args.workdir}", *args.set])
    torch.set_num_threads(cfg.train.threads)
    summary = json.loads(next((cfg.paths.root / "crossval").glob(f"*/{SUMMARY}")).read_text())
    accepted = load_accepted(cfg)
    groups = sorted({s.group for s in accepted})
    rows = {}
    for group in args.group or list(summary["folds"]):
        splits = split_samples(accepted, fold_config(cfg, group, groups))
        vlm = DefectVLM.load(RunLayout(Path(summary["folds"][group]["run_dir"])).model("spatial"), quantize=False)
        start = time.time()
        figures = {} if args.baseline else retrain(vlm, cfg, splits["train"])
        rows[group] = {**score(regions_of(vlm, splits["eval"]), splits["eval"], cfg.eval.iou),
                       "minutes": (time.time() - start) / 60, "refine_final_loss": figures.get("refine_final_loss")}
        if args.class_floors:
            rows[group]["class_floors"] = class_floor_figures(vlm, splits, cfg)
        print(json.dumps({"group": group, "set": args.set, "baseline": args.baseline, **rows[group]}), flush=True)
    f1s = [r["f1"] for r in rows.values()]
    print(json.dumps({"set": args.set, "baseline": args.baseline, "mean_f1": float(np.mean(f1s)),
                      "worst_f1": float(np.min(f1s)), "misnamed": sum(r["misnamed"] for r in rows.values())}))


if __name__ == "__main__":
    main()
