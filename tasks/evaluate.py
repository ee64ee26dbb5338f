"""Evaluation task: the candidate (fp32 and int8) and the current champion on the same boards."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.config import Config
from components.evaluation.columns import headline
from components.evaluation.run import evaluate_model


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(model_dir: str, samples: list, cfg: Config, out_dir: str, name: str, quantize: bool | None = None,
             question_suite: bool = True) -> dict:
    """Headline metrics of one model folder as it is served (cfg.serve.blur_check); report +
    metrics.json land in out_dir. question_suite=False: describe-all only (the figures of
    a model the gate does not judge)."""
    if not question_suite:
        cfg = replace(cfg, eval=replace(cfg.eval, question_suite=False))
    return headline(evaluate_model(Path(model_dir), samples, cfg, Path(out_dir), name, quantize=quantize))
