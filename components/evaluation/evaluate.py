"""Ask the model about every board of a folder (and its template) and score the answers."""
from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm

from components.config import EvalConfig
from components.data.records import Sample
from components.evaluation.metrics import ImageResult, compute_metrics


def run_inspector(inspector, samples: Iterable[Sample], cfg: EvalConfig, templates: bool = True,
                  desc: str = "evaluating") -> list[ImageResult]:
    """One ImageResult per board, and per template (asked alone: a defect-free board)."""
    samples = list(samples)
    if cfg.max_images:
        samples = samples[: cfg.max_images]
    results = []
    for s in tqdm(samples, desc=desc, unit="board"):
        r = inspector.ask(s.test_path, cfg.question, s.template_path)
        results.append(ImageResult(s, "test", r.answer, r.latency_s))
        if templates and s.template_path:
            r = inspector.ask(s.template_path, cfg.question, s.template_path)
            results.append(ImageResult(s, "template", r.answer, r.latency_s))
    return results


def evaluate(inspector, samples: Iterable[Sample], cfg: EvalConfig, classes: tuple[str, ...],
             desc: str = "evaluating") -> tuple[dict, list[ImageResult]]:
    """(metrics dict, per-image results) for an Inspector over samples."""
    results = run_inspector(inspector, samples, cfg, desc=desc)
    return compute_metrics(results, cfg, classes), results
