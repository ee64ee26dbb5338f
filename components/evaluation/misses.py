"""Where the defects the describe-all answer misses are lost, and what they look like.

Every ground-truth box of a board is followed through the steps that could lose it:

1. `not proposed`: no peak of the spatial head covers it (IoU >= eval.iou, any class);
2. `dropped by the refiner`: a peak covers it, but nothing the refiner keeps does;
3. `misnamed by the refiner`: what the refiner keeps there has another class, and the language
   model did not rename it;
4. `left out of the answer`: a region of its class was shown to the language model, which did
   not report it (or reported it with a box that no longer matches).

A box the answer has is found, whatever an earlier step did (the language model renames regions).

Each step matches one to one (greedy, as DeepPCB's rule), so two defects under one peak count
one as lost. Misses are broken down by class, size (sqrt of the box area, original pixels,
edges eval.miss_size_edges_px), neighbours (another defect's centre in the same head cell, or
in the 3 x 3 cells around it, where the head's peak picking keeps one of the two) and contrast
(mean |board - template| in the box, or without a template |box - its surround|, in thirds of
the set's own values).
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import Counter, defaultdict

import numpy as np
from PIL import Image
from tqdm import tqdm

from components.config import EvalConfig
from components.data.records import Box
from components.model.answers import ImageResult, match
from components.qa.grammar import Detection

LOST = ("not proposed", "dropped by the refiner", "misnamed by the refiner", "left out of the answer")
FOUND = "found"
NEIGHBOURS = ("alone", "adjacent cell", "same cell")
DIMENSIONS = ("class", "size", "neighbours", "contrast")


@dataclasses.dataclass
class Followed:
    """One ground-truth box and where it was lost (FOUND: in the answer)."""
    image_id: str
    box: Box
    outcome: str
    size_px: float
    neighbours: str
    contrast: float


def _matched(preds: list[Detection], gts: list[Box], iou: float, same_class: bool) -> set[int]:
    if not same_class:  # class-agnostic: every prediction takes each box's class
        preds = [Detection("any", p.box, p.conf) for p in preds]
        gts = [dataclasses.replace(g, cls="any") for g in gts]
    return {g for _, g in match(preds, gts, iou)}


def outcomes(stages: dict[str, list[Detection]], answer: list[Detection], gts: list[Box], iou: float) -> list[str]:
    """Per box: FOUND when the answer has it (the language model may rename a region the refiner
    misnamed), else the first step that lost it (LOST)."""
    found = _matched(answer, gts, iou, True)
    steps = [_matched(stages["candidates"], gts, iou, False), _matched(stages["regions"], gts, iou, False),
             _matched(stages["regions"], gts, iou, True)]
    return [FOUND if g in found else next((LOST[k] for k, kept in enumerate(steps) if g not in kept), LOST[-1])
            for g in range(len(gts))]


def neighbours(gts: list[Box], cell_px: tuple[float, float]) -> list[str]:
    """Per box: whether another box's centre falls in its head cell, in the 3 x 3 around it, or neither."""
    cells = [(int(b.center[0] // cell_px[0]), int(b.center[1] // cell_px[1])) for b in gts]
    out = []
    for i, (cx, cy) in enumerate(cells):
        gaps = [max(abs(cx - x), abs(cy - y)) for j, (x, y) in enumerate(cells) if j != i]
        out.append(NEIGHBOURS[2] if 0 in gaps else NEIGHBOURS[1] if 1 in gaps else NEIGHBOURS[0])
    return out


def contrast(image: np.ndarray, template: np.ndarray | None, box: Box) -> float:
    """Mean |board - template| in the box (0-1), or with no template |mean in box - mean of a
    surround as wide as the box|."""
    h, w = image.shape
    x1, y1 = max(0, int(box.x1)), max(0, int(box.y1))
    x2, y2 = min(w, max(x1 + 1, int(round(box.x2)))), min(h, max(y1 + 1, int(round(box.y2))))
    inside = image[y1:y2, x1:x2]
    if template is not None:
        return float(np.abs(inside - template[y1:y2, x1:x2]).mean())
    bw, bh = x2 - x1, y2 - y1
    around = image[max(0, y1 - bh):min(h, y2 + bh), max(0, x1 - bw):min(w, x2 + bw)]
    ring = (around.sum() - inside.sum()) / max(1, around.size - inside.size)
    return float(abs(inside.mean() - ring))


def _gray(path: str | None) -> np.ndarray | None:
    if path is None:
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def follow(inspector, results: list[ImageResult], cfg: EvalConfig, templates_as_input: bool = True) -> list[Followed]:
    """Every ground-truth box of the test images of results (describe-all answers), followed."""
    inner = getattr(inspector, "inner", inspector)  # a blur-checked inspector's regions are its inner one's
    tests = [r for r in results if r.kind == "test" and r.gt]
    stride, side = inner.vlm.stride, inner.vlm.meta.input_size
    rows: list[Followed] = []
    for start in tqdm(range(0, len(tests), cfg.batch_size), desc="following defects", unit="batch"):
        batch = tests[start:start + cfg.batch_size]
        boards = [(r.sample.test_path, r.sample.template_path if templates_as_input else None) for r in batch]
        for r, stages, (img, tmpl) in zip(batch, inner.stage_regions(boards), boards, strict=True):
            image, template = _gray(img), _gray(tmpl)
            cell = (stride * image.shape[1] / side, stride * image.shape[0] / side)
            gts = r.gt
            for g, outcome, near in zip(gts, outcomes(stages, r.answer.detections, gts, cfg.iou),
                                        neighbours(gts, cell), strict=True):
                rows.append(Followed(r.sample.sample_id, g, outcome, float(np.sqrt(max(0.0, (g.x2 - g.x1) * (g.y2 - g.y1)))),
                                     near, contrast(image, template, g)))
    return rows


def _size_names(edges: tuple[float, ...]) -> list[str]:
    return [f"< {edges[0]:g} px", *(f"{a:g}-{b:g} px" for a, b in itertools.pairwise(edges)), f">= {edges[-1]:g} px"]


def _size_bin(size: float, edges: tuple[float, ...]) -> str:
    return _size_names(edges)[int(np.searchsorted(edges, size, side="right"))]


def _contrast_bins(values: list[float]) -> tuple[list[str], list[float]]:
    """Each value's third of the set (low / mid / high) and the two edges between them."""
    if not values:
        return [], []
    edges = [float(e) for e in np.quantile(values, [1 / 3, 2 / 3])]
    names = _contrast_names(edges)
    return [names[int(np.searchsorted(edges, v, side="right"))] for v in values], edges


def _contrast_names(edges: list[float]) -> tuple[str, ...]:
    return (f"low (< {edges[0]:.3f})", "mid", f"high (>= {edges[1]:.3f})") if edges else ()


def report(rows: list[Followed], cfg: EvalConfig) -> dict:
    """{"n_defects", "found", "lost": {step: n}, "by": {dimension: {bin: {"n", "recall", step: n}}},
    "contrast_edges", "examples": [first misses]}."""
    contrast_bin, edges = _contrast_bins([r.contrast for r in rows])
    keys = {"class": [r.box.cls for r in rows], "size": [_size_bin(r.size_px, cfg.miss_size_edges_px) for r in rows],
            "neighbours": [r.neighbours for r in rows], "contrast": contrast_bin}
    # Bins in their own order (small to large, low to high), classes by name.
    order = {"class": sorted(set(keys["class"])), "size": _size_names(cfg.miss_size_edges_px),
             "neighbours": list(NEIGHBOURS), "contrast": list(_contrast_names(edges))}
    by: dict[str, dict[str, dict]] = {}
    for dim in DIMENSIONS:
        groups: dict[str, list[Followed]] = defaultdict(list)
        for r, k in zip(rows, keys[dim], strict=True):
            groups[k].append(r)
        by[dim] = {k: _tally(groups[k]) for k in order[dim] if k in groups}
    misses = [r for r in rows if r.outcome != FOUND]
    return {"n_defects": len(rows), **_tally(rows), "by": by, "contrast_edges": edges,
            "examples": [{"image_id": r.image_id, "class": r.box.cls, "box": [r.box.x1, r.box.y1, r.box.x2, r.box.y2],
                          "lost": r.outcome, "size_px": round(r.size_px, 1), "neighbours": r.neighbours,
                          "contrast": round(r.contrast, 4)} for r in misses[: cfg.miss_examples]]}


def _tally(rows: list[Followed]) -> dict:
    counts = Counter(r.outcome for r in rows)
    return {"n": len(rows), "recall": counts[FOUND] / len(rows) if rows else float("nan"),
            "lost": {step: counts[step] for step in LOST}}


def table(rep: dict) -> str:
    """The report as plain text: totals, then one block per dimension."""
    lost = rep["lost"]
    lines = [f"{rep['n_defects']} defects, recall {rep['recall']:.3f}; lost: "
             + ", ".join(f"{k} {v}" for k, v in lost.items())]
    head = f"  {'':24s} {'n':>5s} {'recall':>7s} " + " ".join(f"{k.split()[0] + ' ' + k.split()[-1]:>16s}" for k in LOST)
    for dim in DIMENSIONS:
        lines += [f"by {dim}:", head]
        for name, t in rep["by"][dim].items():
            lines.append(f"  {name:24s} {t['n']:5d} {t['recall']:7.3f} " + " ".join(f"{t['lost'][k]:16d}" for k in LOST))
    return "\n".join(lines)
