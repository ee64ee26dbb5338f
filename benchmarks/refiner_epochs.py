"""How many refiner epochs, and which refiner: retrain a finished run's refiner for each count
(with the model settings given by --set) and score the served model with it (describe-all, no
question suite) on the held-out boards.

    .venv/bin/python benchmarks/refiner_epochs.py --workdir W --epochs 2,3,4 [--set model.refine_topology=false]
W is a workdir whose `pipeline/` holds finished spatial and quantize stages (`defectqa stage`).
The language model stays the one trained on the run's own refiner; calibration is not refitted
(so ECE is not comparable across counts, F1 and count are).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from components.config import load
from components.data.split import load_accepted, split_samples
from components.evaluation.run import evaluate_model, json_line
from components.model.refiner import Refiner, candidate_limit
from components.model.vlm import META_FILE, REFINER_FILE, DefectVLM
from components.pipeline import RunLayout
from components.train.images import FusedSet
from components.train.refine import Jitter, collect, train_refiner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="workdir with finished pipeline/ stages")
    parser.add_argument("--epochs", default="2,3,4", help="comma-separated epoch counts")
    parser.add_argument("--out", type=Path, default=Path("refiner-epochs"), help="models and reports go here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. model.refine_topology=false (the refiner is built from model.*)")
    args = parser.parse_args()
    cfg = load("params.yaml", [f"paths.workdir={args.workdir}", "eval.question_suite=false", *args.set])
    t, run = cfg.train, RunLayout(cfg.paths.pipeline_dir)
    torch.set_num_threads(t.threads)
    splits = split_samples(load_accepted(cfg), cfg)
    data = FusedSet(splits["train"], cfg.data.classes, cfg.model.input_size, t.spatial_template_share, t.seed,
                    t.spatial_no_template_share)
    vlm = DefectVLM.load(run.model("spatial"), quantize=False)
    m = cfg.model
    vlm.refiner = Refiner(len(vlm.meta.classes), crop=m.refine_crop, context=m.refine_context,
                          max_side=m.refine_max_side, topology=m.refine_topology)
    examples = collect(vlm, vlm.refiner, data, vlm.meta.refiner["floor"], candidate_limit(vlm.meta.max_regions),
                       cfg.eval.iou, t.refine_views, t.seed, jitter=Jitter.from_config(t))
    del data
    for epochs in (int(e) for e in args.epochs.split(",")):
        torch.manual_seed(t.seed)
        refiner = Refiner(len(vlm.meta.classes), crop=m.refine_crop, context=m.refine_context,
                          max_side=m.refine_max_side, topology=m.refine_topology)
        figures = train_refiner(refiner, examples, epochs, t.refine_batch, t.refine_lr, t.seed, t.refine_box_weight)
        model = args.out / f"epochs-{epochs}" / "model"
        shutil.rmtree(model, ignore_errors=True)
        shutil.copytree(run.model("quantize"), model)
        torch.save(refiner.state_dict(), model / REFINER_FILE)
        meta = json.loads((model / META_FILE).read_text())
        meta["refiner"].update(crop=m.refine_crop, context=m.refine_context, max_side=m.refine_max_side,
                               topology=m.refine_topology)
        (model / META_FILE).write_text(json.dumps(meta, indent=2))
        metrics = evaluate_model(model, splits["eval"], cfg, model.parent / "eval", f"refiner epochs {epochs}")
        print(f"epochs {epochs} ({figures['refine_minutes']:.1f} min): {json_line(metrics)}", flush=True)


if __name__ == "__main__":
    main()
