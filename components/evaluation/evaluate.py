"""Ask the model about every board of a folder (and its template) and score the answers.

Accuracy is scored on batched answers (same question for all, so one generate call per
batch); latency is what an inspector waits: single-request asks, timed one by one.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable

import numpy as np
from tqdm import tqdm

from components.config import EvalConfig
from components.data.records import Sample
from components.evaluation.metrics import ImageResult, compute_metrics
from components.evaluation.questions import Asked, score, suite, truth_of


def _reference(s: Sample, templates_as_input: bool) -> str | None:
    """The template the model is given with an image: the board's own, or none (no-template mode)."""
    return s.template_path if templates_as_input else None


def _jobs(samples: list[Sample], templates: bool, templates_as_input: bool = True) -> list[tuple[Sample, str, str, str | None]]:
    """(sample, kind, image, template) for each board, then each template asked alone.

    templates_as_input=False: the model sees every board alone (template None), the
    no-template mode; templates are still asked about, as defect-free boards.
    """
    jobs = [(s, "test", s.test_path, _reference(s, templates_as_input)) for s in samples]
    if templates:
        # A template is a defect-free board: ask about it against itself.
        jobs += [(s, "template", s.template_path, _reference(s, templates_as_input))
                 for s in samples if s.template_path]
    return jobs


def run_inspector(inspector, samples: Iterable[Sample], cfg: EvalConfig, templates: bool = True,
                  desc: str = "evaluating", perturb: Callable | None = None,
                  templates_as_input: bool = True) -> list[ImageResult]:
    """One ImageResult per board and per template, answered in batches of cfg.batch_size.

    perturb(image) -> PIL image, if given, is applied to the image asked about (never to
    the template it is compared with; see components/evaluation/robustness.py).
    """
    samples = list(samples)
    if cfg.max_images:
        samples = samples[: cfg.max_images]
    jobs = _jobs(samples, templates, templates_as_input)
    results = []
    for i in tqdm(range(0, len(jobs), cfg.batch_size), desc=desc, unit="batch"):
        chunk = jobs[i:i + cfg.batch_size]
        boards = [(perturb(img) if perturb else img, tmpl) for _, _, img, tmpl in chunk]
        answers = inspector.ask_batch(boards, cfg.question)
        results += [ImageResult(s, kind, r.answer, r.latency_s, r.answer_text) for (s, kind, _, _), r in zip(chunk, answers)]
    return results


def ask_suite(inspector, samples: Iterable[Sample], cfg: EvalConfig, classes: tuple[str, ...],
              templates_as_input: bool = True, desc: str = "question suite") -> list[Asked]:
    """Every board and template asked the question suite (questions.py): one batch per image,
    its regions proposed once."""
    from PIL import Image

    samples = list(samples)[: cfg.suite_max_images or None]
    out: list[Asked] = []
    for s, source, img, tmpl in tqdm(_jobs(samples, True, templates_as_input), desc=desc, unit="image"):
        boxes = list(s.boxes) if source == "test" else []
        image_id = f"{s.sample_id}" if source == "test" else f"{s.sample_id}_template"
        asks = suite(image_id, boxes, classes, cfg.suite_seed)
        with Image.open(img) as im:
            size = im.size
        for q, r in zip(asks, inspector.ask_many(img, tmpl, [q.question for q in asks])):
            out.append(Asked(s.sample_id, source, q, r.answer, truth_of(q, boxes, size), r.answer_text, r.latency_s))
    return out


def measure_latency(inspector, samples: list[Sample], cfg: EvalConfig, templates_as_input: bool = True) -> dict:
    """p50 / p95 seconds of single asks (board + template, or board alone) on the first cfg.latency_samples boards."""
    inspector.ask(samples[0].test_path, cfg.question, _reference(samples[0], templates_as_input))  # warm-up
    times = [inspector.ask(s.test_path, cfg.question, _reference(s, templates_as_input)).latency_s
             for s in samples[: cfg.latency_samples]]
    return {"latency_p50_s": float(np.percentile(times, 50)), "latency_p95_s": float(np.percentile(times, 95)),
            "latency_samples": len(times)}


def evaluate(inspector, samples: Iterable[Sample], cfg: EvalConfig, classes: tuple[str, ...],
             desc: str = "evaluating", templates_as_input: bool = True,
             robustness: bool = False) -> tuple[dict, list[ImageResult], list[Asked]]:
    """(metrics dict, per-image describe-all results, the question suite's answers) for an
    Inspector over samples. The headline figures are the describe-all answers' (cfg.question);
    the question suite adds answer_f1_<kind>, count_exact_<kind>, false_none_rate, ... .

    robustness=True adds metrics["robustness"] = {perturbation: headline metrics}.
    """
    samples = list(samples)
    results = run_inspector(inspector, samples, cfg, desc=desc, templates_as_input=templates_as_input)
    metrics = compute_metrics(results, cfg, classes)
    metrics["seconds_per_answer_batched"] = statistics.mean(r.latency_s for r in results)
    asked: list[Asked] = []
    if cfg.question_suite:
        asked = ask_suite(inspector, samples, cfg, classes, templates_as_input)
        metrics.update(score(asked, cfg.iou))
    metrics.update(measure_latency(inspector, samples, cfg, templates_as_input))
    if robustness:
        from components.evaluation.robustness import evaluate_robustness

        metrics["robustness"] = evaluate_robustness(inspector, samples, cfg, classes, templates_as_input)
    return metrics, results, asked
