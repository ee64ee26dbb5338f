"""Training tasks. Each is cached on (stage, dataset version, config), so a rerun of the
same month skips finished stages; the components also resume from checkpoints."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.config import Config
from components.train import stages


def run_key(cfg: Config, dataset_version: str) -> str:
    """The run folder name: dataset version + a hash of everything that shapes training."""
    shaping = {k: v for k, v in cfg.to_dict().items() if k in ("data", "qa", "model", "train")}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{dataset_version[:12]}-{digest}"


def _key(stage: str):
    def key(context, params) -> str:
        return f"{stage}-{params['run_dir']}"
    return key


def _persisted(stage: str) -> dict:
    return dict(name=stage, cache_key_fn=_key(stage), persist_result=True)


@task(**_persisted("qa"))
def make_qa(train: list, cfg: Config, run_dir: str) -> dict:
    return stages.make_qa(train, cfg, Path(run_dir) / "qa")


@task(**_persisted("train_spatial"))
def train_spatial(train: list, cfg: Config, run_dir: str, dataset_version: str, log=None, lm_boards=None) -> dict:
    return stages.run_spatial(train, cfg, Path(run_dir) / "spatial", dataset_version, log, lm_boards)


@task(**_persisted("sft"))
def sft(train: list, cfg: Config, run_dir: str, log=None) -> dict:
    run = Path(run_dir)
    return stages.run_sft(run / "spatial" / "model", train, run / "qa", cfg, run / "sft", log)


@task(**_persisted("dpo"))
def dpo(train: list, cfg: Config, run_dir: str, log=None) -> dict:
    run = Path(run_dir)
    return stages.run_dpo(run / "sft" / "model", train, run / "qa", cfg, run / "dpo", log)


@task(**_persisted("calibrate"))
def calibrate(calib: list, cfg: Config, run_dir: str) -> dict:
    run = Path(run_dir)
    return stages.run_calibrate(run / "dpo" / "model", calib, cfg, run / "calibrated")


@task(**_persisted("quantize"))
def quantize(run_dir: str) -> dict:
    run = Path(run_dir)
    return stages.run_quantize(run / "calibrated" / "model", run / "int8")


@task(name="mlflow-log", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_stage(cfg: Config, run_id: str, stage: str, figures: dict) -> None:
    """Stage figures to MLflow (retried: SQLite may be briefly locked)."""
    from components.registry import tracking

    tracking.log_metrics(cfg, run_id, figures, stage=stage)
