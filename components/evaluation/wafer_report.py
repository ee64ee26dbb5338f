"""The wafer line's HTML evaluation report: headline figures, the per-label table, the confusion
matrix as a picture, the reliability diagram, reading accuracy per question kind, and example
maps with the questions asked and the answers given (the wrong ones first).

Self-contained like report.py (inline CSS and images), whose helpers it uses.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from components.data.wafer import FAIL, OUTSIDE, WaferMap
from components.evaluation.columns import WAFER, headline
from components.evaluation.report import CSS, data_uri, html_table, reliability_diagram
from components.evaluation.wafer_evaluate import Asked
from components.qa.wafer_grammar import sentence

MAP_COLOURS = {OUTSIDE: (255, 255, 255), FAIL: (200, 30, 30)}
PASS_COLOUR = (150, 200, 150)
"""How a map is drawn: off the wafer white, a passing die green-grey, a failing die red."""
MAP_PX = 160
CELL_PX = 34


def map_picture(grid: np.ndarray, side: int = MAP_PX) -> Image.Image:
    """A bin map as an RGB picture, nearest-neighbour scaled so every die stays a die."""
    rgb = np.empty((*grid.shape, 3), np.uint8)
    rgb[:] = PASS_COLOUR
    for value, colour in MAP_COLOURS.items():
        rgb[grid == value] = colour
    scale = max(1, side // max(grid.shape))
    return Image.fromarray(rgb).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)


def confusion_picture(confusion: list[list[int]], labels: list[str]) -> Image.Image:
    """Rows the true label, columns the stated one; each cell shaded by its share of the row
    (what share of a label's maps got each answer) and printed with its count."""
    cm = np.asarray(confusion, dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    left, top, n = 80, 80, len(labels)
    img = Image.new("RGB", (left + n * CELL_PX + 10, top + n * CELL_PX + 30), "white")
    draw = ImageDraw.Draw(img)
    for i in range(n):
        draw.text((4, top + i * CELL_PX + 11), labels[i][:11], fill="black")
        draw.text((left + i * CELL_PX + 2, top - 14 - (i % 2) * 14), labels[i][:9], fill="black")
        for j in range(n):
            shade = int(255 - 200 * share[i, j])
            box = [left + j * CELL_PX, top + i * CELL_PX, left + (j + 1) * CELL_PX - 1, top + (i + 1) * CELL_PX - 1]
            draw.rectangle(box, fill=(shade, shade, 255), outline=(200, 200, 200))
            draw.text((box[0] + 3, box[1] + 11), str(int(cm[i, j])), fill="black" if share[i, j] < 0.6 else "white")
    draw.text((left, top + n * CELL_PX + 8), "columns: answer  rows: truth", fill="black")
    return img


def _headline(metrics: dict) -> str:
    scalars = headline(metrics)
    rows = [[c.key, scalars[c.key]] for c in WAFER if c.key in scalars]
    return html_table("headline", ["metric", "value"], rows)


def _per_label(metrics: dict) -> str:
    rows = [[r["label"], r["maps"], r["precision"], r["recall"], r["f1"]] for r in metrics.get("per_label", [])]
    return html_table("per-label", ["label", "maps", "precision", "recall", "F1"], rows)


def _reading(metrics: dict) -> str:
    rows = [[k.removeprefix("read_accuracy_"), v] for k, v in metrics.items() if k.startswith("read_accuracy_")]
    return html_table("reading", ["question kind", "read right"], rows)


def pick_examples(maps: list[WaferMap], asked: list[Asked], n: int) -> list[int]:
    """Up to n map indices: the maps whose pattern answer is wrong first (one per true label in
    turn, so no label crowds out the others), then right ones per label."""
    stated = {a.index: a.answer.pattern or "None" for a in asked if a.kind == "pattern"}
    wrong = [i for i in stated if stated[i] != maps[i].label]
    right = [i for i in stated if stated[i] == maps[i].label]
    out: list[int] = []
    for pool in (wrong, right):
        by_label: dict[str, list[int]] = {}
        for i in pool:
            by_label.setdefault(maps[i].label, []).append(i)
        while len(out) < n and any(by_label.values()):
            for idx in by_label.values():
                if idx and len(out) < n:
                    out.append(idx.pop(0))
    return out


def _example(i: int, m: WaferMap, asked: list[Asked], words: dict, item: str) -> str:
    qa = "".join(f"<li><i>{html.escape(a.question)}</i><br>{html.escape(sentence(a.answer, words, item))}</li>"
                 for a in asked if a.index == i)
    return (f'<figure><img src="{data_uri(map_picture(m.grid))}" alt="{html.escape(m.map_id)}">'
            f"<figcaption>map {i} ({html.escape(m.source)}), labelled <b>{html.escape(m.label)}</b>"
            f"<ul>{qa}</ul></figcaption></figure>")


def render_html(metrics: dict, maps: list[WaferMap], asked: list[Asked], labels: list[str], words: dict,
                item: str, n_examples: int, title: str) -> str:
    confusion = data_uri(confusion_picture(metrics["confusion"], labels))
    diagram = data_uri(reliability_diagram(metrics.get("reliability", [])))
    examples = "".join(_example(i, maps[i], asked, words, item) for i in pick_examples(maps, asked, n_examples))
    ece = metrics.get("ece", math.nan)
    return "\n".join([
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>",
        "<p>Every map is asked its pattern in a wording training never saw, and one question of another kind "
        "in turn; the answers are parsed back and scored.</p>",
        "<h2>Headline figures</h2>", _headline(metrics),
        "<h2>Per label</h2>", _per_label(metrics),
        f'<h2>Confusion matrix</h2><img id="confusion" src="{confusion}" alt="confusion matrix">',
        f'<h2>Calibration</h2><p>ECE {ece:.4f}.</p><img src="{diagram}" alt="reliability diagram">',
        "<h2>Question reading</h2>", _reading(metrics),
        "<h2>Example maps</h2><p>Wrong pattern answers first. White: off the wafer; green: passing die; red: "
        "failing die.</p>", examples,
        "</body></html>",
    ])


def write_report(metrics: dict, maps: list[WaferMap], asked: list[Asked], path: str | Path, labels: list[str],
                 words: dict, item: str, n_examples: int, title: str = "defectqa wafer evaluation") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(metrics, maps, asked, labels, words, item, n_examples, title), encoding="utf-8")
    return path
