"""`defectqa evaluate`: score a model folder on a DeepPCB-layout folder, write the report
and (optionally) the detections in DeepPCB's result format."""
from __future__ import annotations

import json
import math
from pathlib import Path

from components.config import Config
from components.data.records import Sample, read_deeppcb
from components.evaluation.evaluate import evaluate
from components.evaluation.export import write_export
from components.evaluation.metrics import headline
from components.evaluation.report import write_report


def evaluate_model(model_dir: Path, samples: list[Sample], cfg: Config, out_dir: Path, name: str,
                   quantize: bool | None = None, export: Path | None = None) -> dict:
    """Metrics of one model on samples; report.html and metrics.json go to out_dir."""
    from components.model.inference import Inspector

    inspector = Inspector.load(model_dir, quantize=quantize)
    metrics, results = evaluate(inspector, samples, cfg.eval, cfg.data.classes, desc=f"evaluating {name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_nan_safe))
    write_report(metrics, results, out_dir / "report.html", cfg.eval, title=f"defectqa evaluation: {name}")
    if export is not None:
        write_export(results, export)
    return metrics


def samples_of(data_dir: str | Path, cfg: Config) -> list[Sample]:
    """Every board of a DeepPCB-layout folder (list file optional); clear error when empty."""
    samples = read_deeppcb(data_dir, cfg.data.classes)
    if not samples:
        raise ValueError(f"{data_dir}: no '<id>_test.jpg' images found (expected DeepPCB layout)")
    return samples


def json_line(metrics: dict) -> str:
    """The scalar metrics as one JSON object (NaN written as null, valid JSON)."""
    return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in headline(metrics).items()})


def _nan_safe(v):
    return None if isinstance(v, float) and math.isnan(v) else str(v)
