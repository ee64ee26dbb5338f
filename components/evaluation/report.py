"""A self-contained HTML evaluation report: tables, a reliability diagram and overlay pictures.

Everything is inline (CSS, base64 images), so the one file can be attached to an
MLflow run or mailed without anything else travelling along.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from components.config import EvalConfig
from components.evaluation.columns import COLUMNS, PERTURBED, REPORTED, headline
from components.model.answers import ImageResult, match

GT_COLOR = (0, 170, 0)
PRED_COLOR = (220, 0, 0)

CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; }
figcaption { font-size: 0.85em; }
"""


# ---- small helpers ------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, float):
        return "&mdash;" if math.isnan(v) else f"{v:.4f}"
    return html.escape(str(v))


def data_uri(img: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def html_table(table_id: str, header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ---- tables -------------------------------------------------------------------------------


def _value(col, metrics: dict):
    """A reported column's value in metrics (NaN: not measured); counts as whole numbers."""
    v = metrics.get(col.key, math.nan)
    return int(v) if col.count and isinstance(v, (int, float)) and math.isfinite(v) else v


def headline_table(metrics: dict) -> str:
    """The reported columns (evaluation/columns.py) the evaluation measured, in their order,
    then any other scalar figure it recorded (n_templates, seconds_per_answer_batched, ...)."""
    scalars = headline(metrics)
    rows = [[c.key, _value(c, metrics)] for c in COLUMNS if c.key in scalars]
    rows += [[k, metrics[k]] for k in scalars if k not in REPORTED]
    return html_table("headline", ["metric", "value"], rows)


def per_class_table(metrics: dict) -> str:
    cols = ["precision", "recall", "f1", "ap50", "tp", "n_pred", "n_gt"]
    rows = [[cls, *(m.get(c, math.nan) for c in cols)] for cls, m in metrics.get("per_class", {}).items()]
    return html_table("per-class", ["class", *cols], rows)


def reliability_table(metrics: dict) -> str:
    rows = [[f"{r['lo']:.2f}-{r['hi']:.2f}", r["mean_confidence"], r["accuracy"], r["count"]]
            for r in metrics.get("reliability", [])]
    return html_table("reliability", ["confidence bin", "mean confidence", "accuracy", "count"], rows)


def robustness_table(metrics: dict) -> str:
    """One row per perturbation (with its severity), clean evaluation first for comparison;
    the columns a perturbed evaluation is reported with (columns.PERTURBED)."""
    rows = [["none (clean)", "", *(_value(c, metrics) for c in PERTURBED)]]
    rows += [[name, m.get("severity", ""), *(_value(c, m) for c in PERTURBED)]
             for name, m in metrics.get("robustness", {}).items()]
    return html_table("robustness", ["perturbation", "severity", *(c.key for c in PERTURBED)], rows)


def misses_tables(metrics: dict) -> str:
    """The miss report (evaluation/misses.py): where missed defects were lost, one table per
    dimension, then the first misses one by one."""
    from components.evaluation.misses import DIMENSIONS, LOST

    rep = metrics.get("misses")
    if not rep:
        return ""
    parts = [f"<p>{rep['n_defects']} defects, recall {_fmt(rep['recall'])}. A miss is counted at the first "
             "step that lost it: " + "; ".join(html.escape(k) for k in LOST) + ".</p>"]
    for dim in DIMENSIONS:
        rows = [[name, t["n"], t["recall"], *(t["lost"][k] for k in LOST)] for name, t in rep["by"][dim].items()]
        parts += [f"<h3>By {dim}</h3>", html_table(f"misses-{dim}", [dim, "n", "recall", *LOST], rows)]
    rows = [[e["image_id"], e["class"], ", ".join(f"{v:.0f}" for v in e["box"]), e["lost"], e["size_px"],
             e["neighbours"], e["contrast"]] for e in rep["examples"]]
    parts += ["<h3>First misses</h3>",
              html_table("misses-examples", ["image", "class", "box", "lost", "size px", "neighbours", "contrast"], rows)]
    return "".join(parts)


def settings_line(metrics: dict) -> str:
    s = metrics.get("settings", {})
    if not s:
        return ""
    mode = "board + template" if s.get("templates_as_input", True) else "board alone (no-template mode)"
    same = ", same class" if s.get("blur_check_same_class") else ", any class"
    blur = (f"on (sigma {s.get('blur_check_sigma')}, IoU &ge; {s.get('blur_check_iou')}{same})"
            if s.get("blur_check") else "off")
    return f"<p>Model input: {mode}. Blur-consistency check: {blur}.</p>"


# ---- pictures -----------------------------------------------------------------------------


def reliability_diagram(table: list[dict], size: int = 320) -> Image.Image:
    """Accuracy per confidence bin as bars, against the diagonal of perfect calibration."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    m = 36  # margin for the axis labels
    side = size - 2 * m

    def xy(x: float, y: float) -> tuple[float, float]:
        return (m + x * side, size - m - y * side)

    for r in table:
        if r["count"]:
            draw.rectangle([xy(r["lo"], r["accuracy"]), xy(r["hi"], 0)], fill=(90, 130, 210), outline="white")
    draw.line([xy(0, 0), xy(1, 1)], fill=(150, 150, 150), width=1)
    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    for t in (0.0, 0.5, 1.0):
        draw.text((xy(t, 0)[0] - 8, size - m + 4), f"{t:.1f}", fill="black")
        draw.text((4, xy(0, t)[1] - 6), f"{t:.1f}", fill="black")
    draw.text((size / 2 - 28, size - 14), "confidence", fill="black")
    draw.text((4, 4), "accuracy", fill="black")
    return img


def _labelled_box(draw: ImageDraw.ImageDraw, box, color, label: str, font) -> None:
    draw.rectangle(box, outline=color, width=2)
    if label:
        x, y = box[0], max(box[1] - 12, 0)
        w = draw.textlength(label, font=font)
        draw.rectangle([x, y, x + w + 2, y + 11], fill=color)
        draw.text((x + 1, y), label, fill="white", font=font)


def overlay(result: ImageResult) -> Image.Image:
    """The board shown to the model, GT boxes in green, predictions in red with class + confidence."""
    path = result.sample.test_path if result.kind == "test" else result.sample.template_path
    img = Image.open(path).convert("RGB")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for b in result.gt:
        _labelled_box(draw, [b.x1, b.y1, b.x2, b.y2], GT_COLOR, "", font)
    for d in result.answer.detections:
        _labelled_box(draw, list(d.box), PRED_COLOR, f"{d.cls} {d.conf:.2f}", font)
    return img


def errors(result: ImageResult, iou: float) -> int:
    """Misses plus false positives under the DeepPCB rule."""
    tp = len(match(result.answer.detections, result.gt, iou))
    return len(result.answer.detections) + len(result.gt) - 2 * tp


def pick_overlays(results: list[ImageResult], n: int, iou: float) -> list[ImageResult]:
    """The n images with the most errors (stable: ties keep the evaluation order)."""
    return sorted(results, key=lambda r: -errors(r, iou))[:n]


def _figure(result: ImageResult, iou: float) -> str:
    caption = (f"{result.sample.sample_id} ({result.kind}): {len(result.gt)} GT, "
               f"{len(result.answer.detections)} reported, {errors(result, iou)} errors")
    try:
        uri = data_uri(overlay(result), "JPEG")
    except OSError as exc:  # a moved image should not cost the whole report
        return f"<figure><figcaption>{html.escape(caption)}: image unavailable ({html.escape(str(exc))})</figcaption></figure>"
    return (f'<figure><img src="{uri}" width="480" alt="{html.escape(result.sample.sample_id)}">'
            f'<figcaption>{html.escape(caption)}</figcaption></figure>')


# ---- the page -----------------------------------------------------------------------------


def render_html(metrics: dict, results: list[ImageResult], cfg: EvalConfig, title: str = "defectqa evaluation") -> str:
    figures = "".join(_figure(r, cfg.iou) for r in pick_overlays(results, cfg.report_overlays, cfg.iou))
    diagram = data_uri(reliability_diagram(metrics.get("reliability", [])), "PNG")
    return "\n".join([
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Matching rule: same class and IoU &ge; {cfg.iou} (DeepPCB), greedy by confidence.</p>",
        settings_line(metrics),
        "<h2>Headline metrics</h2>", headline_table(metrics),
        *(["<h2>Robustness</h2><p>The board asked about is perturbed; its template is not.</p>",
            robustness_table(metrics)] if metrics.get("robustness") else []),
        "<h2>Per class</h2>", per_class_table(metrics),
        *(["<h2>Misses</h2>", misses_tables(metrics)] if metrics.get("misses") else []),
        "<h2>Calibration</h2>", f'<img src="{diagram}" alt="reliability diagram">', reliability_table(metrics),
        "<h2>Overlays</h2><p>Green: ground truth. Red: reported defects.</p>", figures,
        "</body></html>",
    ])


def write_report(metrics: dict, results: list[ImageResult], path: str | Path, cfg: EvalConfig,
                 title: str = "defectqa evaluation") -> Path:
    """Write the HTML report to path and return that path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(metrics, results, cfg, title), encoding="utf-8")
    return path
