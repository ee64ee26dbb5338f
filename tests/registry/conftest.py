"""A real MLflow store (SQLite in a tmp dir), created once: its migrations take seconds."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from components.config import Config

_names = itertools.count()

# Metrics of a model that passes every gate check (GateConfig defaults) with a margin.
GOOD = {"f1_iou33": 0.95, "center_rmse_px": 5.0, "hallucination_rate": 0.01, "latency_p95_s": 0.5,
        "count_exact": 0.99, "ece": 0.02, "template_false_alarm": 0.0,
        "parse_failure_rate": 0.0, "answer_f1_locate": 0.95, "answer_f1_exists": 0.95, "answer_f1_count_class": 0.95,
        "answer_f1_spatial": 0.95, "count_exact_count_class": 0.95, "false_none_rate": 0.01,
        "question_read_accuracy": 0.99}


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    old = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the store must come from cfg.paths.workdir
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield tmp_path_factory.mktemp("defectqa")
    if old is not None:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture
def cfg(store_dir) -> Config:
    """Config on the shared store, with its own registered-model name per test."""
    c = Config()
    c.paths.workdir = str(store_dir)
    c.registered_model = f"defect-vlm-t{next(_names)}"
    return c


@pytest.fixture
def model_dir(tmp_path):
    """Factory of stand-in model folders: registry mechanics don't need real weights."""

    def make(text: str) -> Path:
        d = tmp_path / f"model-{text}"
        (d / "sub").mkdir(parents=True, exist_ok=True)
        (d / "weights.txt").write_text(text)
        (d / "sub" / "config.json").write_text(f'{{"v": "{text}"}}')
        return d

    return make
