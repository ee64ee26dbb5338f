"""Evaluate a wafer model on a drop of labelled maps, as it is used: every map is asked its pattern
in a wording training never saw (wafer_heldout.yaml), and one more question of another kind,
the kinds in turn; the answers are parsed back and scored.

Figures: the pattern ones of the parsed answers (`wafer_metrics.label_metrics`); reading accuracy
per kind (the answer is of the kind asked, about the pattern asked); location_accuracy on maps
whose label says where the failing dies are (LABEL_LOCATION); presence_false_yes (the share of
presence questions answered "yes" about a pattern the map does not show); fail_share_mae (the answers'
failing share against the map's, as a fraction); latency of single questions end to end.
"""
from __future__ import annotations

import csv
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from components.config import Config
from components.data.wafer import FAIL, OUTSIDE, WaferMap
from components.evaluation.wafer_metrics import Stats, label_metrics, map_sums, sum_figures
from components.model.wafer_inspector import WaferInspector
from components.qa.wafer_generate import ask
from components.qa.wafer_grammar import WaferAnswer, parse, render
from components.qa.wafer_vocab import KINDS, NONE, OFF_KIND

HELDOUT = Path(__file__).with_name("wafer_heldout.yaml")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
LABEL_LOCATION: dict[str, set[str]] = {"Center": {"centre"}, "Edge-Ring": {"ring", "edge"},
                                       "Edge-Loc": {"edge", *QUADRANTS}, "Near-full": {"everywhere"}}
"""Where a map's label puts its failing dies, for the labels that say it: the location answers
right for it (a ring at the edge is at the edge; an edge spot is at the edge, in one quadrant)."""
OTHER_KINDS = tuple(k for k in KINDS if k != "pattern") + (OFF_KIND,)


def heldout_phrasings() -> dict[str, list[str]]:
    return yaml.safe_load(HELDOUT.read_text())


def _names(cfg: Config) -> dict:
    """Per label, the held-out names a question calls it by (its first word where it has none)."""
    return {lb: cfg.line.heldout_words.get(lb) or cfg.line.words[lb][:1] for lb in cfg.data.classes}


@dataclass
class Asked:
    """One question asked about one map, and its answer as parsed back."""
    index: int
    kind: str
    asked: str
    question: str
    answer: WaferAnswer

    @property
    def read_right(self) -> bool:
        """The answer is of the kind asked, about the pattern asked."""
        return self.answer.kind == self.kind and self.answer.asked == self.asked


def evaluate_wafer(inspector: WaferInspector, maps: list[WaferMap], cfg: Config,
                   export: Path | None = None) -> tuple[dict, list[Asked], dict[str, Stats]]:
    """(metrics, every question asked with its answer, per-map sums for the paired comparison)."""
    labels = tuple(cfg.data.classes)
    phrasings, names, rng = heldout_phrasings(), _names(cfg), random.Random(cfg.wafer.seed)
    patterns = [lb for lb in labels if lb != NONE]
    probs = inspector.distributions([m.grid for m in maps])
    plan = []  # (map, kind, asked about, question): every question first, then answered in batches
    for i, m in enumerate(maps):
        plan.append((i, "pattern", "", ask("pattern", "", names, cfg.line.items, rng, phrasings)))
        kind = OTHER_KINDS[i % len(OTHER_KINDS)]
        about = (m.label if m.label != NONE and rng.random() < 0.5 else rng.choice(patterns)) if kind == "presence" else ""
        plan.append((i, kind, about, ask(kind, about, names, cfg.line.items, rng, phrasings)))
    answers = inspector.answers([maps[i].grid for i, *_ in plan], [q for *_, q in plan], [probs[i] for i, *_ in plan])
    asked = [Asked(i, kind, about, q, parse(render(a), labels))
             for (i, kind, about, q), a in zip(plan, answers, strict=True)]
    read_ok, false_yes = defaultdict(list), []
    for a in asked:
        read_ok[a.kind].append(a.read_right)
        if a.kind == "presence":
            false_yes.append(bool(a.answer.found) and a.asked != maps[a.index].label)
    sums = {}
    for pattern, other in zip(asked[::2], asked[1::2], strict=True):
        m = maps[pattern.index]
        sums[m.map_id] = map_sums(m.label, pattern.answer.pattern or NONE, questions=2,
                                  read_ok=pattern.read_right + other.read_right,
                                  **_measured(m, other.kind, other.answer))
    pred = [a.answer.pattern or NONE for a in asked if a.kind == "pattern"]
    conf = [a.answer.conf if a.answer.conf is not None else 0.0 for a in asked if a.kind == "pattern"]
    scores = label_metrics(pred, conf, [m.label for m in maps], list(labels), cfg.eval.ece_bins)
    latency = _latency(inspector, maps, cfg, names, phrasings)
    if export:
        _export(export, maps, pred, conf)
    total = {k: sum(s.get(k, 0.0) for s in sums.values()) for k in ("loc_ok", "loc_n", "share_err", "share_n")}
    figures = sum_figures(total)
    metrics = {**scores, "location_accuracy": figures["location_accuracy"], "fail_share_mae": figures["fail_share_mae"],
               "question_read_accuracy": sum(map(sum, read_ok.values())) / len(asked),
               **{f"read_accuracy_{k}": float(np.mean(v)) for k, v in read_ok.items()},
               "presence_false_yes": float(np.mean(false_yes)) if false_yes else 0.0,
               "latency_p50_s": float(np.percentile(latency, 50)), "latency_p95_s": float(np.percentile(latency, 95)),
               "n_questions": len(asked)}
    return metrics, asked, sums


def _measured(m: WaferMap, kind: str, a: WaferAnswer) -> dict[str, float]:
    """The sums of what an answer states that the map measures: where the failing dies are (every
    location question on a map whose label says, LABEL_LOCATION: a misread one answers no place)
    and their share of the wafer (every answer that states one)."""
    out = {}
    if kind == "location" and m.label in LABEL_LOCATION:
        out |= {"loc_n": 1, "loc_ok": a.loc in LABEL_LOCATION[m.label]}
    if a.share is not None:
        out |= {"share_n": 1, "share_err": abs(a.share / 100 - (m.grid == FAIL).sum() / (m.grid > OUTSIDE).sum())}
    return out


def _latency(inspector: WaferInspector, maps: list[WaferMap], cfg: Config, names: dict, phrasings: dict) -> list[float]:
    """Seconds per question, one at a time from the raw map to the parsed answer."""
    rng, out = random.Random(cfg.wafer.seed + 1), []
    for _ in range(min(cfg.wafer.latency_questions, len(maps) * 2)):
        m, kind = rng.choice(maps), rng.choice(KINDS)
        asked = rng.choice([lb for lb in cfg.data.classes if lb != NONE]) if kind == "presence" else ""
        question = ask(kind, asked, names, cfg.line.items, rng, phrasings)
        start = time.perf_counter()
        parse(render(inspector.answer(m.grid, question)), tuple(cfg.data.classes))
        out.append(time.perf_counter() - start)
    return out


def _export(path: Path, maps: list[WaferMap], pred: list[str], conf: list[float]) -> None:
    """One row per map: index, the label the answer states (as in the data), its confidence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "confidence"])
        for i, (_, lb, c) in enumerate(zip(maps, pred, conf, strict=True)):
            w.writerow([i, lb, f"{c:.4f}"])
