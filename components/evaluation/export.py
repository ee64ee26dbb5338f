"""Detections in DeepPCB's result format, a reader for it, and a scorer that uses only the files.

Layout under OUT: `<id>.txt` per tested image and `templates/<id>.txt` per template;
one line per defect `x1,y1,x2,y2,confidence,type` (type is the class name, boxes
are integer pixels of the original image), an empty file when none is reported.
Keeping the files lets the dataset's rule be re-applied without our code or model.
"""
from __future__ import annotations

from pathlib import Path

from components.data.records import Sample
from components.evaluation.metrics import prf
from components.model.answers import ImageResult, match
from components.qa.grammar import Detection

TEMPLATES = "templates"
QUESTIONS = "questions.jsonl"
"""The question suite's answers: one JSON line per question (evaluation/questions.py: to_json)."""


def format_line(d: Detection) -> str:
    x1, y1, x2, y2 = (int(round(v)) for v in d.box)
    # repr() is the shortest text that reads back to the same float.
    return f"{x1},{y1},{x2},{y2},{float(d.conf)!r},{d.cls}"


def parse_line(line: str, where: str = "") -> Detection:
    """One `x1,y1,x2,y2,confidence,type` line; ValueError naming `where` if malformed."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 6:
        raise ValueError(f"{where}: expected 'x1,y1,x2,y2,confidence,type', got {line!r}")
    try:
        box = tuple(int(round(float(v))) for v in parts[:4])
        conf = float(parts[4])
    except ValueError as exc:
        raise ValueError(f"{where}: non-numeric field in {line!r}") from exc
    return Detection(parts[5], box, conf)  # type: ignore[arg-type]


def result_path(out_dir: str | Path, sample_id: str, kind: str = "test") -> Path:
    base = Path(out_dir) / TEMPLATES if kind == "template" else Path(out_dir)
    return base / f"{sample_id}.txt"


def write_export(results: list[ImageResult], out_dir: str | Path) -> Path:
    """Write one result file per evaluated image; returns out_dir."""
    out = Path(out_dir)
    (out / TEMPLATES).mkdir(parents=True, exist_ok=True)
    for r in results:
        lines = [format_line(d) for d in r.answer.detections]
        result_path(out, r.sample.sample_id, r.kind).write_text("".join(line + "\n" for line in lines))
    return out


def read_result_file(path: str | Path) -> list[Detection]:
    lines = Path(path).read_text().splitlines()
    return [parse_line(line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


def read_export(out_dir: str | Path, kind: str = "test") -> dict[str, list[Detection]]:
    """Sample id -> detections, for the tested images (kind="test") or the templates."""
    base = Path(out_dir) / TEMPLATES if kind == "template" else Path(out_dir)
    return {p.stem: read_result_file(p) for p in sorted(base.glob("*.txt"))}


def score_export(out_dir: str | Path, samples: list[Sample], iou: float = 0.33) -> dict:
    """Precision / recall / F1 (DeepPCB rule) from the result files and the samples' boxes.

    Every sample must have a result file: a missing one is an error, not an empty answer,
    so an incomplete export can't pass as a cautious model.
    """
    tp = n_pred = n_gt = 0
    for s in samples:
        path = result_path(out_dir, s.sample_id)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no result file for sample {s.sample_id}")
        dets = read_result_file(path)
        tp += len(match(dets, s.boxes, iou))
        n_pred += len(dets)
        n_gt += len(s.boxes)
    scores = prf(tp, n_pred, n_gt)
    return {**scores, "tp": tp, "n_pred": n_pred, "n_gt": n_gt}


def write_questions(asked: list, path: str | Path) -> Path:
    """questions.jsonl: board id, question, kind, what it asks, the model's reading and detections."""
    import json

    from components.evaluation.questions import to_json

    Path(path).write_text("".join(json.dumps(to_json(a)) + "\n" for a in asked))
    return Path(path)
