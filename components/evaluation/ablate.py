"""`defectqa ablate RUN_DIR`: what each stage and option of a finished run adds, measured.

Every row is the same evaluation as `defectqa evaluate` (its headline JSON metrics) on
the held-out board groups (config `data.holdout_groups`), of one stage's model folder
or of the served model with one option changed, plus the training minutes spent up to
that stage (from the stages' stage.json) and the single-ask latency. The table and the
JSON rows are written to a markdown file (docs/RESULTS.md by default).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from components.config import Config
from components.data.records import Sample
from components.evaluation.evaluate import evaluate
from components.evaluation.metrics import headline
from components.evaluation.questions import FIGURES
from components.evaluation.run import samples_of
from components.model.blur_check import load_inspector

STAGE_ORDER = ("spatial", "sft", "dpo", "calibrated", "int8")
"""Run-folder stages in training order; a stage a run does not have is skipped."""


@dataclass(frozen=True)
class Row:
    name: str
    stage: str
    """Stage folder whose `model/` is evaluated."""
    quantize: bool | None = None
    """None = as the folder's meta says (int8 for the int8 stage)."""
    blur_check: bool = False
    blur_same_class: bool | None = None
    """With the blur check: must the blurred copy name the same class? None = as configured."""
    templates_as_input: bool = True
    variant: str = ""
    """Decode-time ablation of the spatial branch (see VARIANTS)."""
    note: str = ""


SERVED = "+int8 (served)"
"""The row evaluated as answers are served; the robustness table perturbs its model."""

ROWS = (
    Row("SFT only", "sft", False, note="fp32, raw head scores (identity calibration)"),
    Row("+DPO", "dpo", False, note="fp32, raw head scores"),
    Row("+calibration", "calibrated", False, note="fp32, Platt-scaled confidences"),
    Row(SERVED, "int8", note="int8 language model, fp32 vision: what is served (serve.blur_check off)"),
    Row("+blur check (option)", "int8", blur_check=True,
        note="int8; board and a blurred copy, defects seen in both, of any class (serve.blur_check=true)"),
    Row("blur check, same class", "int8", blur_check=True, blur_same_class=True,
        note="int8; as above, but the blurred copy must name the same class (eval.blur_check_same_class=true)"),
    Row("no template", "int8", templates_as_input=False, note="int8; the model sees each board alone"),
    Row("coordinate head: no sub-cell offset", "int8", variant="cell_centre",
        note="int8; region centres at their heatmap cell's centre (offset branch ignored)"),
    Row("no refinement", "int8", variant="no_refine",
        note="int8; the refiner switched off: head classes and scores go to the language model as they are"),
    Row("refinement: one pass, no merging", "int8", variant="one_pass",
        note="int8; the refiner checks each candidate once and overlapping or touching corrected boxes are all kept"),
    Row("refinement: no end-to-end merge", "int8", variant="no_touch_merge",
        note="int8; same-class boxes that touch end to end stay apart (model.refine_merge_touching=false)"),
)

NOT_DONE = (
    ("without coordinate head (coordinates as text)",
     "no such model exists in this pipeline: the language model never writes coordinates, it refers to the "
     "coordinate head's regions, so the head cannot be removed at decode time"),
)

TABLE_COLS = (("f1_iou33", "F1@.33"), ("precision_iou33", "P"), ("recall_iou33", "R"), ("map50", "mAP50"),
              ("center_rmse_px", "centre RMSE px"), ("count_exact", "count exact"),
              ("hallucination_rate", "halluc."), ("template_false_alarm", "template FA"), ("ece", "ECE"),
              ("parse_failure_rate", "parse fail"), ("latency_p50_s", "p50 s"), ("latency_p95_s", "p95 s"))


# ---- the run folder --------------------------------------------------------------------


def stage_figures(run_dir: Path) -> dict[str, dict]:
    """stage name -> its stage.json figures, for the stages the run has."""
    out = {}
    for stage in STAGE_ORDER:
        f = run_dir / stage / "stage.json"
        if f.exists():
            out[stage] = json.loads(f.read_text())
    return out


def stage_minutes(figures: dict) -> float | None:
    """Training minutes a stage recorded (sum of its `*minutes` figures); None if it recorded none."""
    vals = [float(v) for k, v in figures.items() if k.endswith("minutes") and isinstance(v, (int, float))]
    return sum(vals) if vals else None


def minutes_up_to(stage: str, figures: dict[str, dict]) -> tuple[float, list[str]]:
    """(training minutes of every stage up to and including `stage`, stages that recorded none)."""
    total, missing = 0.0, []
    for s in STAGE_ORDER[: STAGE_ORDER.index(stage) + 1]:
        if s not in figures:
            continue
        m = stage_minutes(figures[s])
        if m is None:
            missing.append(s)
        else:
            total += m
    return total, missing


def holdout_samples(data_dir: str | Path, cfg: Config) -> list[Sample]:
    """The boards of the held-out groups (cfg.data.holdout_groups) of a DeepPCB-layout folder."""
    samples = [s for s in samples_of(data_dir, cfg) if s.group in cfg.data.holdout_groups]
    if not samples:
        raise ValueError(f"{data_dir}: no boards of the held-out groups {', '.join(cfg.data.holdout_groups)}")
    return samples


# ---- decode-time variants ------------------------------------------------------------


def _cell_centre(vlm) -> list[int]:
    """Ignore the head's sub-cell offset: sigmoid(0) = 0.5, so every region's centre sits
    at its cell's centre. Wraps this instance's `spatial`; returns a call counter so the
    caller can check the inference path really went through it."""
    import torch

    calls = [0]
    original = vlm.spatial

    def spatial(images_uint8):
        out = dict(original(images_uint8))
        out["offset"] = torch.zeros_like(out["offset"])
        calls[0] += 1
        return out

    vlm.spatial = spatial
    return calls


def _no_refine(vlm) -> list[int]:
    """Switch the refiner off: candidates are the head's own (class, score) above region_floor.
    The language model was trained on refined candidates, so this measures what the refiner
    adds at answer time. The counter is 1 when there was a refiner to switch off."""
    calls = [int(vlm.refiner is not None)]
    vlm.refiner = None
    return calls


def _one_pass(vlm) -> list[int]:
    """The refiner without its cascade: one re-check (model.refine_passes = 1), no NMS of the
    corrected boxes (model.refine_nms_iou = 1), no end-to-end merge. The counter is 1 when
    there was a refiner."""
    calls = [int(vlm.refiner is not None)]
    vlm.meta.refiner = {**vlm.meta.refiner, "passes": 1, "nms": 1.0, "merge_gap": None}
    return calls


def _no_touch_merge(vlm) -> list[int]:
    """Keep same-class boxes that touch end to end apart. The counter is 1 when the model
    merged them (a refiner, trained with model.refine_merge_touching on)."""
    calls = [int(vlm.refiner is not None and vlm.meta.refiner.get("merge_gap") is not None)]
    vlm.meta.refiner = {**vlm.meta.refiner, "merge_gap": None}
    return calls


VARIANTS = {"cell_centre": _cell_centre, "no_refine": _no_refine, "one_pass": _one_pass,
            "no_touch_merge": _no_touch_merge}


# ---- the rows ---------------------------------------------------------------------------


def evaluate_row(row: Row, run_dir: Path, samples: list[Sample], cfg: Config, figures: dict[str, dict]) -> dict:
    """One row: its settings, headline metrics (NaN as None), training minutes and eval time."""
    model_dir = run_dir / row.stage / "model"
    if row.blur_same_class is not None:
        cfg = replace(cfg, eval=replace(cfg.eval, blur_check_same_class=row.blur_same_class))
    inspector = load_inspector(model_dir, cfg, row.quantize, row.blur_check)
    calls = VARIANTS[row.variant](inspector.vlm) if row.variant else None
    start = time.perf_counter()
    metrics, _, _ = evaluate(inspector, samples, cfg.eval, cfg.data.classes, desc=f"ablate: {row.name}",
                          templates_as_input=row.templates_as_input)
    minutes, missing = minutes_up_to(row.stage, figures)
    out = {
        "row": row.name, "model": f"{row.stage}/model", "quantize": inspector.vlm.meta.quantize if row.quantize is None
        else ("int8" if row.quantize else "none"),
        "blur_check": row.blur_check,
        **({"blur_check_same_class": cfg.eval.blur_check_same_class} if row.blur_check else {}),
        "templates_as_input": row.templates_as_input, "variant": row.variant,
        "train_minutes": round(minutes, 2), "train_minutes_not_recorded": missing,
        "eval_seconds": round(time.perf_counter() - start, 1), "note": row.note,
        "metrics": _json_safe(headline(metrics)),
    }
    if calls is not None and not calls[0]:
        out["note"] += " -- VARIANT NOT APPLIED (no spatial call, or no refiner or merge to switch off)"
    return out


def ablate(run_dir: Path, data_dir: Path, cfg: Config, rows: tuple[Row, ...] = ROWS) -> tuple[list[dict], list[Sample]]:
    """Every row that the run folder has a model for, evaluated on the held-out boards."""
    run_dir = Path(run_dir)
    figures = stage_figures(run_dir)
    samples = holdout_samples(data_dir, cfg)
    if cfg.eval.max_images:
        samples = samples[: cfg.eval.max_images]
    todo = [r for r in rows if (run_dir / r.stage / "model").is_dir()]
    if not todo:
        raise FileNotFoundError(f"{run_dir}: no stage model folders ({', '.join(sorted({r.stage for r in rows}))}/model)")
    results = [evaluate_row(r, run_dir, samples, cfg, figures) for r in tqdm(todo, desc="ablation rows", unit="row")]
    skipped = [r for r in rows if r not in todo]
    results += [{"row": r.name, "model": f"{r.stage}/model", "skipped": "the run folder has no such model"} for r in skipped]
    return results, samples


def _json_safe(metrics: dict) -> dict:
    """NaN (a metric with nothing to measure) as None, which JSON can carry."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def served_robustness(run_dir: Path, samples: list[Sample], cfg: Config) -> dict[str, dict] | None:
    """The SERVED row's model, set up as that row, under each perturbation of
    evaluation/robustness.py: {name: severity + headline metrics}; None if the run has no such model."""
    from components.evaluation.robustness import evaluate_robustness

    row = next(r for r in ROWS if r.name == SERVED)
    model_dir = Path(run_dir) / row.stage / "model"
    if not model_dir.is_dir():
        return None
    inspector = load_inspector(model_dir, cfg, row.quantize, row.blur_check)
    return {name: _json_safe(m) for name, m in evaluate_robustness(inspector, samples, cfg.eval, cfg.data.classes).items()}


# ---- RESULTS.md ----------------------------------------------------------------------------


def _cell(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


ROBUST_COLS = (("f1_iou33", "F1@.33"), ("precision_iou33", "P"), ("recall_iou33", "R"),
               ("center_rmse_px", "centre RMSE px"), ("count_exact", "count exact"),
               ("hallucination_rate", "halluc."), ("template_false_alarm", "template FA"), ("ece", "ECE"))


def robustness_lines(robust: dict[str, dict], results: list[dict]) -> list[str]:
    """The robustness table: the served row clean, then one row per perturbation."""
    served = next((r["metrics"] for r in results if r["row"] == SERVED and "metrics" in r), {})
    lines = ["## Robustness (served model)", "",
             f"The \"{SERVED}\" model on the same boards with the board under test perturbed "
             "(its template is not): Gaussian noise (std, grey levels), Gaussian blur (sigma, px), "
             "brightness (factor) and JPEG re-encoding (quality); `defectqa evaluate --robustness` "
             "gives the same rows for any model.", "",
             "| perturbation | severity | " + " | ".join(h for _, h in ROBUST_COLS) + " |",
             "|---|---|" + "---|" * len(ROBUST_COLS),
             "| none (clean) | – | " + " | ".join(_cell(served.get(k)) for k, _ in ROBUST_COLS) + " |"]
    for name, m in robust.items():
        lines.append(f"| {name} | {_cell(m.get('severity'))} | " + " | ".join(_cell(m.get(k)) for k, _ in ROBUST_COLS) + " |")
    return lines + [""]


def render_results(results: list[dict], samples: list[Sample], cfg: Config, command: str, run_dir: Path,
                   data_dir: Path, when: dt.datetime | None = None, robust: dict[str, dict] | None = None) -> str:
    when = when or dt.datetime.now()
    n_templates = sum(1 for s in samples if s.template_path)
    lines = [
        "# Ablation results",
        "",
        f"Produced by `{command}` on {when:%Y-%m-%d %H:%M}.",
        "",
        f"Run folder: `{run_dir}`. Boards: the held-out groups ({', '.join(cfg.data.holdout_groups)}) of "
        f"`{data_dir}`, {len(samples)} boards and {n_templates} defect-free templates"
        + (f" (first {cfg.eval.max_images} boards only)." if cfg.eval.max_images else ".")
        + f" Headline figures: the answers to \"{cfg.eval.question}\". Matching: same class and IoU >= {cfg.eval.iou}.",
        "",
        "Each row is the evaluation of `defectqa evaluate` (metrics below as JSON). Training minutes are "
        "cumulative up to the row's stage, as recorded in the stages' `stage.json` (training loops only; "
        "calibration and quantization record no time). Latencies are single asks (board + template), "
        "p50 / p95 seconds.",
        "",
        "| row | " + " | ".join(h for _, h in TABLE_COLS) + " | train min | note |",
        "|---|" + "---|" * (len(TABLE_COLS) + 2),
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['row']} | " + " | ".join("–" for _ in TABLE_COLS) + f" | – | skipped: {r['skipped']} |")
            continue
        m = r["metrics"]
        lines.append(f"| {r['row']} | " + " | ".join(_cell(m.get(k)) for k, _ in TABLE_COLS)
                     + f" | {r['train_minutes']:.1f} | {r['note']} |")
    lines += ["", "Every kind of question (the held-out question suite, `evaluation/questions.py`; answer F1 "
              "against the boxes each question asks for):", "",
              "| row | " + " | ".join(_short(k) for k in FIGURES) + " |", "|---|" + "---|" * len(FIGURES)]
    lines += [f"| {r['row']} | " + " | ".join(_cell(r["metrics"].get(k)) for k in FIGURES) + " |"
              for r in results if "skipped" not in r]
    lines += ["", "Not measured:", ""]
    lines += [f"- {name}: {why}." for name, why in NOT_DONE]
    lines += [""] + (robustness_lines(robust, results) if robust else [])
    lines += ["## JSON rows", "", "```json"]
    lines += [json.dumps(r) for r in results]
    if robust:
        lines += [json.dumps({"robustness": name, **m}) for name, m in robust.items()]
    lines += ["```", ""]
    return "\n".join(lines)


def _short(figure: str) -> str:
    return figure.replace("answer_f1_", "F1 ").replace("count_exact_", "count ").replace("_rate", "").replace("_", " ")


def write_results(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
