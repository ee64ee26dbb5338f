"""`defectqa evaluate`: score a model folder on a DeepPCB-layout folder, write the report
and (optionally) the detections in DeepPCB's result format."""
from __future__ import annotations

import json
import math
from pathlib import Path

from components.config import Config
from components.data.records import Sample, read_deeppcb
from components.evaluation import misses, paired
from components.evaluation.columns import headline, json_safe
from components.evaluation.evaluate import evaluate
from components.evaluation.export import QUESTIONS, write_export, write_questions
from components.evaluation.report import write_report
from components.evaluation.wafer_evaluate import evaluate_wafer
from components.evaluation.wafer_report import write_report as write_wafer_report
from components.model.blur_check import BlurChecked, load_inspector
from components.model.wafer_inspector import WaferInspector
from components.qa.wafer_grammar import render


def evaluate_model(model_dir: Path, samples: list[Sample], cfg: Config, out_dir: Path, name: str,
                   quantize: bool | None = None, export: Path | None = None, templates_as_input: bool = True,
                   robustness: bool = False, blur_check: bool | None = None) -> dict:
    """Metrics of one model on samples; report.html, metrics.json, the question suite's
    answers (questions.jsonl) and the per-board sums a paired comparison needs (boards.json)
    go to out_dir; with export, also DeepPCB result files and
    questions.jsonl there.

    templates_as_input=False: no-template mode (the model sees each board alone);
    robustness: add the per-perturbation section; blur_check: the blur-consistency check
    (None: as served, cfg.serve.blur_check).
    """
    inspector = load_inspector(model_dir, cfg, quantize, blur_check)
    blur_check = isinstance(inspector, BlurChecked)
    metrics, results, asked = evaluate(inspector, samples, cfg.eval, cfg.data.classes, desc=f"evaluating {name}",
                                templates_as_input=templates_as_input, robustness=robustness, line=cfg.line)
    # Nested (not scalar), so headline() and MLflow logging leave them out.
    metrics["misses"] = misses.report(misses.follow(inspector, results, cfg.eval, templates_as_input), cfg.eval)
    metrics["settings"] = {"templates_as_input": templates_as_input, "blur_check": blur_check,
                           **({k: v for k, v in inspector.version_info.items() if k.startswith("blur_check_")}
                              if blur_check else {})}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_nan_safe))
    write_report(metrics, results, out_dir / "report.html", cfg.eval, title=f"defectqa evaluation: {name}")
    write_questions(asked, out_dir / QUESTIONS)
    paired.save(paired.board_stats(results, asked, cfg.eval.iou), out_dir / paired.BOARDS)
    if export is not None:
        write_export(results, export)
        write_questions(asked, export / QUESTIONS)
    return metrics


def miss_report(model_dir: Path, samples: list[Sample], cfg: Config, out: Path | None = None,
                templates_as_input: bool = True) -> str:
    """The miss report (evaluation/misses.py) of the describe-all answers alone, as text; with
    out, also out/misses.json."""
    from components.model.answers import run_inspector

    inspector = load_inspector(model_dir, cfg, None, None)
    results = run_inspector(inspector, samples, cfg.eval, templates=False, templates_as_input=templates_as_input)
    rep = misses.report(misses.follow(inspector, results, cfg.eval, templates_as_input), cfg.eval)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "misses.json").write_text(json.dumps(rep, indent=2, default=_nan_safe))
    return misses.table(rep)


def samples_of(data_dir: str | Path, cfg: Config) -> list[Sample]:
    """Every image of an evaluation folder with its boxes: a DeepPCB layout (boards with their
    templates), or a Pascal VOC / COCO drop (images alone, e.g. the steel line's). Clear error
    when it holds no image, or an annotation cannot be read (naming the file)."""
    from components.data.adapters import detect_format, load_configured

    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"{data_dir}: not a folder")
    if detect_format(data_dir) == "deeppcb":
        samples = read_deeppcb(data_dir, cfg.data.classes)
    else:
        drop = load_configured(data_dir, cfg.data.classes, cfg.data.class_map)
        if bad := [f"{s.sample_id}: {e}" for s, e in zip(drop.samples, drop.errors, strict=True) if e]:
            raise ValueError(f"{data_dir}: {len(bad)} image(s) cannot be evaluated: " + "; ".join(bad[:5]))
        samples = drop.samples
    if not samples:
        raise ValueError(f"{data_dir}: no images found (expected DeepPCB '<id>_test.jpg', Pascal VOC or COCO)")
    return samples


def evaluate_wafer_model(model_dir: Path, maps: list, cfg: Config, out_dir: Path, name: str,
                         export: Path | None = None) -> dict:
    """The wafer line's evaluate_model: metrics.json, report.html, the questions and answers
    (answers.jsonl) and the per-map sums of the paired comparison (boards.json) in out_dir;
    with export, one CSV row per map (index,label,confidence)."""
    metrics, asked, sums = evaluate_wafer(WaferInspector.load(model_dir), maps, cfg, export)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_nan_safe))
    write_wafer_report(metrics, maps, asked, out_dir / "report.html", list(cfg.data.classes), cfg.line.words,
                       cfg.line.items[0], cfg.eval.report_overlays, title=f"defectqa wafer evaluation: {name}")
    with (out_dir / "answers.jsonl").open("w") as f:
        for a in asked:
            f.write(json.dumps({"index": a.index, "map_id": maps[a.index].map_id, "kind": a.kind, "asked": a.asked,
                                "question": a.question, "answer": render(a.answer)}) + "\n")
    paired.save(sums, out_dir / paired.BOARDS)
    return metrics


def json_line(metrics: dict) -> str:
    """The scalar metrics as one JSON object (NaN written as null, valid JSON), plus the
    `robustness` section ({perturbation: scalars}) when there is one."""
    out = json_safe(headline(metrics))
    if "robustness" in metrics:
        out["robustness"] = {k: json_safe(v) for k, v in metrics["robustness"].items()}
    return json.dumps(out)


def _nan_safe(v):
    return None if isinstance(v, float) and math.isnan(v) else str(v)
