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
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from components.config import Config
from components.data.records import Sample
from components.evaluation.columns import DESCRIBE, PERTURBED, SUITE, headline, json_safe
from components.evaluation.evaluate import evaluate
from components.evaluation.run import samples_of
from components.model.blur_check import load_inspector
from components.pipeline import MODEL_STAGES, RunLayout


@dataclass(frozen=True)
class Row:
    name: str
    stage: str
    """The stage (components/pipeline.py) whose model is evaluated."""
    quantize: bool | None = None
    """None = as the folder's meta says (int8 for the quantize stage's)."""
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
    Row("+calibration", "calibrate", False, note="fp32, Platt-scaled confidences"),
    Row(SERVED, "quantize", note="int8 language model, fp32 vision: what is served (serve.blur_check off)"),
    Row("+blur check (option)", "quantize", blur_check=True,
        note="int8; board and a blurred copy, defects seen in both, of any class (serve.blur_check=true)"),
    Row("blur check, same class", "quantize", blur_check=True, blur_same_class=True,
        note="int8; as above, but the blurred copy must name the same class (eval.blur_check_same_class=true)"),
    Row("no template", "quantize", templates_as_input=False, note="int8; the model sees each board alone"),
    Row("coordinate head: no sub-cell offset", "quantize", variant="cell_centre",
        note="int8; region centres at their heatmap cell's centre (offset branch ignored)"),
    Row("no refinement", "quantize", variant="no_refine",
        note="int8; the refiner switched off: head classes and scores go to the language model as they are"),
    Row("refinement: one pass, no merging", "quantize", variant="one_pass",
        note="int8; the refiner checks each candidate once and overlapping or touching corrected boxes are all kept"),
    Row("refinement: no end-to-end merge", "quantize", variant="no_touch_merge",
        note="int8; same-class boxes that touch end to end stay apart (model.refine_merge_touching=false)"),
    Row("+refiner test-time flips (option)", "quantize", variant="refiner_views",
        note="int8; the refiner classifies each crop in all 8 flips/rotations and averages (model.refine_tta_views=8)"),
)

NOT_DONE = (
    ("without coordinate head (coordinates as text)",
     "no such model exists in this pipeline: the language model never writes coordinates, it refers to the "
     "coordinate head's regions, so the head cannot be removed at decode time"),
)

# ---- the run folder --------------------------------------------------------------------


def _model_name(row: Row) -> str:
    """The row's model folder as a run names it (`int8/model`)."""
    return str(RunLayout(Path()).model(row.stage))


def stage_figures(run_dir: Path) -> dict[str, dict]:
    """stage name -> its stage.json figures, for the stages the run has."""
    out = {}
    for stage in MODEL_STAGES:
        f = RunLayout(run_dir).dir(stage) / "stage.json"
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
    for s in MODEL_STAGES[: MODEL_STAGES.index(stage) + 1]:
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


def _refiner_views(vlm) -> list[int]:
    """The refiner in all 8 test-time views of each crop (views.py). The counter is 1 when there is
    a refiner and it was not in 8 views already."""
    calls = [int(vlm.refiner is not None and vlm.meta.refiner.get("tta_views", 1) != 8)]
    vlm.meta.refiner = {**vlm.meta.refiner, "tta_views": 8}
    return calls


VARIANTS = {"cell_centre": _cell_centre, "no_refine": _no_refine, "one_pass": _one_pass,
            "no_touch_merge": _no_touch_merge, "refiner_views": _refiner_views}


# ---- the rows ---------------------------------------------------------------------------


def evaluate_row(row: Row, run_dir: Path, samples: list[Sample], cfg: Config, figures: dict[str, dict]) -> dict:
    """One row: its settings, headline metrics (NaN as None), training minutes and eval time."""
    model_dir = RunLayout(run_dir).model(row.stage)
    if row.blur_same_class is not None:
        cfg = replace(cfg, eval=replace(cfg.eval, blur_check_same_class=row.blur_same_class))
    inspector = load_inspector(model_dir, cfg, row.quantize, row.blur_check)
    calls = VARIANTS[row.variant](inspector.vlm) if row.variant else None
    start = time.perf_counter()
    metrics, _, _ = evaluate(inspector, samples, cfg.eval, cfg.data.classes, desc=f"ablate: {row.name}",
                          templates_as_input=row.templates_as_input, line=cfg.line)
    minutes, missing = minutes_up_to(row.stage, figures)
    out = {
        "row": row.name, "model": _model_name(row), "quantize": inspector.vlm.meta.quantize if row.quantize is None
        else ("int8" if row.quantize else "none"),
        "blur_check": row.blur_check,
        **({"blur_check_same_class": cfg.eval.blur_check_same_class} if row.blur_check else {}),
        "templates_as_input": row.templates_as_input, "variant": row.variant,
        "train_minutes": round(minutes, 2), "train_minutes_not_recorded": missing,
        "eval_seconds": round(time.perf_counter() - start, 1), "note": row.note,
        "metrics": json_safe(headline(metrics)),
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
    todo = [r for r in rows if RunLayout(run_dir).model(r.stage).is_dir()]
    if not todo:
        raise FileNotFoundError(f"{run_dir}: no stage model folders ({', '.join(sorted({_model_name(r) for r in rows}))})")
    results = [evaluate_row(r, run_dir, samples, cfg, figures) for r in tqdm(todo, desc="ablation rows", unit="row")]
    skipped = [r for r in rows if r not in todo]
    results += [{"row": r.name, "model": _model_name(r), "skipped": "the run folder has no such model"} for r in skipped]
    return results, samples


def served_robustness(run_dir: Path, samples: list[Sample], cfg: Config) -> dict[str, dict] | None:
    """The SERVED row's model, set up as that row, under each perturbation of
    evaluation/robustness.py: {name: severity + headline metrics}; None if the run has no such model."""
    from components.evaluation.robustness import evaluate_robustness

    row = next(r for r in ROWS if r.name == SERVED)
    model_dir = RunLayout(Path(run_dir)).model(row.stage)
    if not model_dir.is_dir():
        return None
    inspector = load_inspector(model_dir, cfg, row.quantize, row.blur_check)
    return {name: json_safe(m) for name, m in evaluate_robustness(inspector, samples, cfg.eval, cfg.data.classes).items()}


# ---- RESULTS.md ----------------------------------------------------------------------------


def _cell(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _cells(cols, m: dict) -> str:
    """One table row's cells of the reported columns `cols` (evaluation/columns.py); "–": not measured."""
    return " | ".join(c.cell(m.get(c.key), 3) for c in cols)


def _header(cols) -> str:
    return " | ".join(c.header for c in cols)


def robustness_lines(robust: dict[str, dict], results: list[dict]) -> list[str]:
    """The robustness table: the served row clean, then one row per perturbation."""
    served = next((r["metrics"] for r in results if r["row"] == SERVED and "metrics" in r), {})
    lines = ["## Robustness (served model)", "",
             f"The \"{SERVED}\" model on the same boards with the board under test perturbed "
             "(its template is not): Gaussian noise (std, grey levels), Gaussian blur (sigma, px), "
             "brightness (factor) and JPEG re-encoding (quality); `defectqa evaluate --robustness` "
             "gives the same rows for any model.", "",
             "| perturbation | severity | " + _header(PERTURBED) + " |",
             "|---|---|" + "---|" * len(PERTURBED),
             "| none (clean) | – | " + _cells(PERTURBED, served) + " |"]
    for name, m in robust.items():
        lines.append(f"| {name} | {_cell(m.get('severity'))} | " + _cells(PERTURBED, m) + " |")
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
        "| row | " + _header(DESCRIBE) + " | train min | note |",
        "|---|" + "---|" * (len(DESCRIBE) + 2),
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['row']} | " + " | ".join("–" for _ in DESCRIBE) + f" | – | skipped: {r['skipped']} |")
            continue
        m = r["metrics"]
        lines.append(f"| {r['row']} | " + _cells(DESCRIBE, m) + f" | {r['train_minutes']:.1f} | {r['note']} |")
    lines += ["", "Every kind of question (the held-out question suite, `evaluation/questions.py`; answer F1 "
              "against the boxes each question asks for):", "",
              "| row | " + _header(SUITE) + " |", "|---|" + "---|" * len(SUITE)]
    lines += [f"| {r['row']} | " + _cells(SUITE, r["metrics"]) + " |" for r in results if "skipped" not in r]
    lines += ["", "Not measured:", ""]
    lines += [f"- {name}: {why}." for name, why in NOT_DONE]
    lines += [""] + (robustness_lines(robust, results) if robust else [])
    lines += ["## JSON rows", "", "```json"]
    lines += [json.dumps(r) for r in results]
    if robust:
        lines += [json.dumps({"robustness": name, **m}) for name, m in robust.items()]
    lines += ["```", ""]
    return "\n".join(lines)


HAND_WRITTEN = "<!-- Hand-written from here on: `defectqa ablate` rewrites only what is above this line. -->"
"""Marker line of the results file: it and everything after it are kept when the results are written again."""


def write_results(path: Path, text: str) -> Path:
    """Write the generated results to path; if the file already has a HAND_WRITTEN marker line,
    that line and the hand-written tail after it (docs/RESULTS.md: "Why some defaults are what
    they are") are kept after the new text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    at = next((i for i, line in enumerate(old) if line.strip() == HAND_WRITTEN), None)
    tail = "".join(old[at:]) if at is not None else ""
    path.write_text(text.rstrip("\n") + "\n\n" + tail if tail else text, encoding="utf-8")
    return path
