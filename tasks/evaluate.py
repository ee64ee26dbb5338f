"""Evaluation task: the candidate (fp32 and int8) and the current champion on the same boards."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.config import Config
from components.evaluation.metrics import headline
from components.evaluation.run import evaluate_model


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(model_dir: str, samples: list, cfg: Config, out_dir: str, name: str, quantize: bool | None = None) -> dict:
    """Headline metrics of one model folder as it is served (cfg.serve.blur_check); report +
    metrics.json land in out_dir."""
    return headline(evaluate_model(Path(model_dir), samples, cfg, Path(out_dir), name, quantize=quantize))
