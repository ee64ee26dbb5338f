"""A real MLflow store (SQLite in a tmp dir), created once: its migrations take seconds."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from components.config import Config

_names = itertools.count()


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
        (d / "sub" / "config.json").write_text('{"v": "%s"}' % text)
        return d

    return make
