"""Ask the model about every board of a folder (and its template) and score the answers.

Accuracy is scored on batched answers (same question for all, so one generate call per
batch); latency is what an inspector waits: single-request asks, timed one by one.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable

import numpy as np
from tqdm import tqdm

from components.config import EvalConfig
from components.data.records import Sample
from components.evaluation.metrics import compute_metrics
from components.evaluation.questions import Asked, score, suite, truth_of
from components.evaluation.robustness import evaluate_robustness
from components.line import LineConfig
from components.model.answers import ImageResult, jobs, reference, run_inspector


def ask_suite(inspector, samples: Iterable[Sample], cfg: EvalConfig, classes: tuple[str, ...],
              templates_as_input: bool = True, desc: str = "question suite", line: LineConfig | None = None) -> list[Asked]:
    """Every board and template asked the question suite (questions.py) in the held-out
    wordings of `line` (default: the default line's): one batch per image, its regions proposed once."""
    from PIL import Image

    samples = list(samples)[: cfg.suite_max_images or None]
    out: list[Asked] = []
    for s, source, img, tmpl in tqdm(jobs(samples, True, templates_as_input), desc=desc, unit="image"):
        boxes = list(s.boxes) if source == "test" else []
        image_id = f"{s.sample_id}" if source == "test" else f"{s.sample_id}_template"
        asks = suite(image_id, boxes, classes, cfg.suite_seed, line)
        with Image.open(img) as im:
            size = im.size
        for q, r in zip(asks, inspector.ask_many(img, tmpl, [q.question for q in asks]), strict=True):
            out.append(Asked(s.sample_id, source, q, r.answer, truth_of(q, boxes, size), r.answer_text, r.latency_s))
    return out


def measure_latency(inspector, samples: list[Sample], cfg: EvalConfig, templates_as_input: bool = True) -> dict:
    """p50 / p95 seconds of single asks (board + template, or board alone) on the first cfg.latency_samples boards."""
    inspector.ask(samples[0].test_path, cfg.question, reference(samples[0], templates_as_input))  # warm-up
    times = [inspector.ask(s.test_path, cfg.question, reference(s, templates_as_input)).latency_s
             for s in samples[: cfg.latency_samples]]
    return {"latency_p50_s": float(np.percentile(times, 50)), "latency_p95_s": float(np.percentile(times, 95)),
            "latency_samples": len(times)}


def evaluate(inspector, samples: Iterable[Sample], cfg: EvalConfig, classes: tuple[str, ...],
             desc: str = "evaluating", templates_as_input: bool = True,
             robustness: bool = False, line: LineConfig | None = None) -> tuple[dict, list[ImageResult], list[Asked]]:
    """(metrics dict, per-image describe-all results, the question suite's answers) for an
    Inspector over samples. The headline figures are the describe-all answers' (cfg.question);
    the question suite adds answer_f1_<kind>, count_exact_<kind>, false_none_rate, ... .

    robustness=True adds metrics["robustness"] = {perturbation: headline metrics}. `line`: whose
    held-out words and items the suite asks in (default: the default line's).
    """
    samples = list(samples)
    results = run_inspector(inspector, samples, cfg, desc=desc, templates_as_input=templates_as_input)
    metrics = compute_metrics(results, cfg, classes)
    metrics["seconds_per_answer_batched"] = statistics.mean(r.latency_s for r in results)
    asked: list[Asked] = []
    if cfg.question_suite:
        asked = ask_suite(inspector, samples, cfg, classes, templates_as_input, line=line)
        metrics.update(score(asked, cfg.iou))
    metrics.update(measure_latency(inspector, samples, cfg, templates_as_input))
    if robustness:
        metrics["robustness"] = evaluate_robustness(inspector, samples, cfg, classes, templates_as_input)
    return metrics, results, asked
