"""Train the wafer pattern branch on one .npz part and score it on another: one JSON line of
the headline figures, then the per-label table.

    .venv/bin/python benchmarks/wafer_pattern.py --train ../shared/data/wm811k/train.npz \
        --val ../shared/data/wm811k/val.npz [--set wafer.steps=3000] [--out FOLDER]
    .venv/bin/python benchmarks/wafer_pattern.py --load RUN/model/pattern --val ../shared/data/wm811k/val.npz \
        --set wafer.views=1    # score a trained branch as it is, read over wafer.views views
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from components import config
from components.data.wafer import read_npz
from components.evaluation.wafer_metrics import pattern_metrics
from components.model.wafer_pattern import WaferPattern
from components.train.wafer_pattern import train_pattern


def _train(args, cfg):
    train = read_npz(args.train)
    if args.max_train:
        random.Random(cfg.wafer.seed).shuffle(train)
        train = train[: args.max_train]

    def log(step: int, row: dict) -> None:
        print(f"step {step}: loss {row['wafer_loss']:.3f}", flush=True)

    return train_pattern(train, cfg.data.classes, cfg.wafer, log, device=args.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, help=".npz maps to train (and calibrate) on")
    parser.add_argument("--load", type=Path, help="a trained branch folder to score instead (read over wafer.views views)")
    parser.add_argument("--val", type=Path, required=True, help=".npz maps to score on")
    parser.add_argument("--max-train", type=int, default=0, help="random training maps to use (0 = all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", type=Path, help="save the trained branch here")
    parser.add_argument("--device", default="cpu", help="where to train (cpu, cuda); scoring runs on the CPU")
    parser.add_argument("--probs-out", type=Path, help="write the scored maps' label distribution here (.npy)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config.load(overrides=args.set, line="wafer")
    if (args.train is None) == (args.load is None):
        parser.error("give --train (train a branch) or --load (score a trained one)")
    val = read_npz(args.val)
    if args.load:
        model, summary = WaferPattern.load(args.load), {}
        model.meta.views = cfg.wafer.views
    else:
        model, summary = _train(args, cfg)
    if args.out:
        model.save(args.out)
    start = time.perf_counter()
    probs = model.probabilities([m.grid for m in val])
    seconds = time.perf_counter() - start
    if args.probs_out:
        np.save(args.probs_out, probs.numpy())
    scores = pattern_metrics(probs, [m.label for m in val], list(cfg.data.classes), cfg.eval.ece_bins)
    head = {k: v for k, v in scores.items() if k not in ("per_label", "confusion")}
    print(json.dumps({**head, **summary, "score_s_per_map": seconds / len(val)}))
    print("| label | maps | precision | recall | F1 |\n|---|---|---|---|---|")
    for r in scores["per_label"]:
        print(f"| {r['label']} | {r['maps']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")


if __name__ == "__main__":
    main()
