"""Test-time flips, measured: describe-all figures and where misses are lost, per number of
views of the spatial branch (model.tta_views) and of the refiner (model.refine_tta_views), on one
model and one folder (a leave-one-group-out fold's model on its held-out group, say). The
model's meta is changed in memory only.

    .venv/bin/python benchmarks/tta.py --model RUN/int8/model --data ../shared/data/deeppcb/group44000 \
        [--views 1:1,2:1,1:8] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from components import config
from components.evaluation import misses
from components.evaluation.metrics import compute_metrics
from components.evaluation.run import samples_of
from components.model.answers import run_inspector
from components.model.blur_check import load_inspector

FIGURES = ("recall_iou33", "precision_iou33", "f1_iou33", "count_exact", "hallucination_rate", "template_false_alarm",
           "center_rmse_px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model folder")
    parser.add_argument("--data", type=Path, required=True, help="a DeepPCB-layout folder or a VOC / COCO drop")
    parser.add_argument("--views", default="1:1,2:1,1:8,2:8",
                        help="comma-separated HEAD:REFINER view counts (1..8 each)")
    parser.add_argument("--line", default="pcb")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, key=value")
    args = parser.parse_args()
    cfg = config.load("params.yaml", args.sets, args.line)
    samples = samples_of(args.data, cfg)
    inspector = load_inspector(args.model, cfg)
    print(f"{args.model} on {args.data} ({len(samples)} boards)")
    print("| head views | refiner views | " + " | ".join(FIGURES) + " | " + " | ".join(misses.LOST) + " | s/board |")
    print("|---" * (len(FIGURES) + len(misses.LOST) + 3) + "|")
    for pair in args.views.split(","):
        head, refiner = (int(v) for v in pair.split(":"))
        inspector.vlm.meta.tta_views = head
        inspector.vlm.meta.refiner["tta_views"] = refiner
        start = time.perf_counter()
        results = run_inspector(inspector, samples, cfg.eval, desc=f"views {pair}")
        seconds = (time.perf_counter() - start) / len(results)
        m = compute_metrics(results, cfg.eval, cfg.data.classes)
        rep = misses.report(misses.follow(inspector, results, cfg.eval), cfg.eval)
        print(f"| {head} | {refiner} | " + " | ".join(f"{m[k]:.4f}" for k in FIGURES) + " | "
              + " | ".join(str(rep["lost"][k]) for k in misses.LOST) + f" | {seconds:.3f} |", flush=True)


if __name__ == "__main__":
    main()
