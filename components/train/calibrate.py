"""Confidence calibration: Platt scaling fitted on board groups the model never trained on.

A reported defect's confidence is sigmoid(a * logit(head score) + b), with a, b fitted
(`train.calibration`: by default the maximum a posteriori fit under a prior at the identity,
`train.calibration_prior`) on whether each reported defect was right (same class, IoU
>= 0.33) on the calibration groups, defect-free templates included (anything reported
there is wrong). Fitted twice: boards with their templates (`calibration`) and boards
alone (`calibration_no_template`, the no-template mode, where the model is much less
sure). Stored in the model folder's meta, so it ships with the model.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from components.config import Config
from components.data.records import Sample
from components.model.answers import correct_flags, ece, reliability, run_inspector
from components.model.vlm import META_FILE


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def fit_platt(scores: list[float], correct: list[bool]) -> dict:
    """a, b of sigmoid(a * logit(score) + b); identity when one outcome is missing."""
    from sklearn.linear_model import LogisticRegression

    if len(set(correct)) < 2:
        return {"a": 1.0, "b": 0.0}
    x = np.array([[_logit(s)] for s in scores])
    lr = LogisticRegression(C=1e4).fit(x, np.array(correct, dtype=int))
    return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def fit_platt_prior(scores: list[float], correct: list[bool], prior: float) -> dict:
    """a, b of Platt scaling with a Gaussian prior at the identity (a = 1, b = 0) worth `prior`
    boards' worth of evidence: the maximum a posteriori fit. One calibration group's a, b do not
    hold on another (benchmarks/calibration.py); the prior keeps the fit near the refiner's own
    scores unless the calibration boards say much otherwise."""
    from scipy.optimize import minimize
    from scipy.special import log_expit

    if not scores:
        return {"a": 1.0, "b": 0.0}
    x, y = np.array([_logit(s) for s in scores]), np.array(correct, dtype=float)

    def loss(v):
        z = v[0] * x + v[1]
        return -np.sum(y * log_expit(z) + (1 - y) * log_expit(-z)) + prior / 2 * ((v[0] - 1) ** 2 + v[1] ** 2)

    v = minimize(loss, [1.0, 0.0], method="L-BFGS-B").x
    return {"a": float(v[0]), "b": float(v[1])}


CALIBRATIONS = {"identity": lambda scores, correct, prior: {"a": 1.0, "b": 0.0},
                "platt": lambda scores, correct, prior: fit_platt(scores, correct),
                "platt_prior": fit_platt_prior}
"""The calibration methods (`train.calibration`): name -> fit(scores, correct, prior) -> parameters."""


def fit_calibration_params(scores: list[float], correct: list[bool], method: str, prior: float = 0.0) -> dict:
    if method not in CALIBRATIONS:
        raise ValueError(f"train.calibration: unknown method {method!r}; choose one of {sorted(CALIBRATIONS)}")
    return CALIBRATIONS[method](scores, correct, prior)


def fit_calibration(model_dir: Path, calib: list[Sample], cfg: Config) -> dict:
    """Fit on `calib` with the model in model_dir (fp32), with and without templates, and write
    both into its meta."""
    meta_path = Path(model_dir) / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["calibration"] = meta["calibration_no_template"] = {"a": 1.0, "b": 0.0}
    meta_path.write_text(json.dumps(meta, indent=2))
    if not calib:
        return {"calib_images": 0, "calib_detections": 0, "note": "no calibration groups: identity calibration"}
    from components.model.inference import Inspector

    inspector = Inspector.load(model_dir, quantize=False)  # reads the identity calibration just written
    figures = {"calib_images": len(calib)}
    for key, prefix, with_template in (("calibration", "calib", True), ("calibration_no_template", "calib_no_template", False)):
        params, fig = _fit_one(inspector, calib, cfg, with_template)
        meta[key] = params
        figures.update({f"{prefix}_{k}": v for k, v in fig.items()})
    meta_path.write_text(json.dumps(meta, indent=2))
    return figures


def scored(inspector, samples: list[Sample], cfg: Config, with_template: bool = True) -> tuple[list[float], list[bool]]:
    """(confidence, right?) of every defect the inspector reports on `samples` and their
    templates, boards asked with their templates or alone: what a calibration is fitted on."""
    results = run_inspector(inspector, samples, cfg.eval, templates_as_input=with_template,
                            desc="calibration" + ("" if with_template else " (no template)"))
    return ([d.conf for r in results for d in r.answer.detections],
            [c for r in results for c in correct_flags(r, cfg.eval.iou)])


def _fit_one(inspector, calib: list[Sample], cfg: Config, with_template: bool) -> tuple[dict, dict]:
    """(Platt parameters, figures) of the inspector's raw scores on `calib`, boards asked with
    their templates or alone."""
    from components.model.regions import calibrate

    scores, correct = scored(inspector, calib, cfg, with_template)
    params = fit_calibration_params(scores, correct, cfg.train.calibration, cfg.train.calibration_prior)
    after = [calibrate(s, params) for s in scores]
    return params, {"detections": len(scores), "a": params["a"], "b": params["b"],
                    "ece_before": ece(reliability(scores, correct, cfg.eval.ece_bins)),
                    "ece_after": ece(reliability(after, correct, cfg.eval.ece_bins))}
