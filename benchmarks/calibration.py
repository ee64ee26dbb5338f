"""Which confidence calibration holds on board groups it was not fitted on: answer the
calibration and the held-out boards once with raw scores, then fit each method on one set and
measure its ECE on the other, both ways (never choosing on one split).

    .venv/bin/python benchmarks/calibration.py --workdir W --model W/runs/<run>/calibrated/model
W: the workdir of a finished run (its accepted data gives the split); the model's own
calibration is set aside (raw scores). Prints one line per method and direction.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.config import load
from components.data.split import load_accepted, split_samples
from components.model.answers import ece, reliability
from components.model.regions import calibrate
from components.train.calibrate import fit_calibration_params, scored


def _answer_raw(model_dir: Path, cfg) -> dict:
    """{"calib": (scores, correct), "eval": (...)} of the model (int8, as served) with its
    calibration set aside."""
    from components.model.inference import Inspector

    splits = split_samples(load_accepted(cfg), cfg)
    inspector = Inspector.load(model_dir, quantize=True)
    inspector.vlm.meta.calibration = {"a": 1.0, "b": 0.0}  # raw scores
    return {name: scored(inspector, splits[name], cfg) for name in ("calib", "eval")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--methods", default="identity,platt,platt_prior=30,platt_prior=100,platt_prior=300,platt_prior=1000",
                        help="comma-separated; platt_prior=N: the prior's strength N")
    parser.add_argument("--scores", type=Path, default=None,
                        help="raw scores kept here (JSON), and read from here when present (methods compared again)")
    args = parser.parse_args()
    cfg = load("params.yaml", [f"paths.workdir={args.workdir}"])
    if args.scores and args.scores.exists():
        sets = json.loads(args.scores.read_text())
    else:
        sets = _answer_raw(args.model, cfg)
        if args.scores:
            args.scores.write_text(json.dumps(sets))
    for spec in args.methods.split(","):
        method, _, prior = spec.partition("=")  # platt_prior=100: the prior's strength
        for fit_on, test_on in (("calib", "eval"), ("eval", "calib")):
            params = fit_calibration_params(*sets[fit_on], method, float(prior or 0))
            scores, correct = sets[test_on]
            after = [calibrate(s, params) for s in scores]
            print(json.dumps({"method": spec, "fit_on": fit_on, "test_on": test_on, "params": params,
                              "n": len(scores), "accuracy": float(np.mean(correct)),
                              "ece_raw": round(ece(reliability(scores, correct, cfg.eval.ece_bins)), 4),
                              "ece": round(ece(reliability(after, correct, cfg.eval.ece_bins)), 4)}), flush=True)


if __name__ == "__main__":
    main()
