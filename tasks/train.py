"""Training tasks. Each is cached on (stage, run folder), and the run folder is named for the
dataset version and every config value training reads (components/pipeline.run_key), so a
rerun of the same month skips finished stages; the components also resume from checkpoints."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.config import Config
from components.pipeline import RunLayout
from components.train import stages


def _key(stage: str):
    def key(context, params) -> str:
        return f"{stage}-{params['run_dir']}"
    return key


def _persisted(stage: str) -> dict:
    return dict(name=stage, cache_key_fn=_key(stage), persist_result=True)


@task(**_persisted("qa"))
def make_qa(train: list, cfg: Config, run_dir: str) -> dict:
    return stages.make_qa(train, cfg, RunLayout(Path(run_dir)).dir("qa"))


@task(**_persisted("spatial"))
def train_spatial(train: list, cfg: Config, run_dir: str, dataset_version: str, log=None, lm_boards=None) -> dict:
    return stages.run_spatial(train, cfg, RunLayout(Path(run_dir)).dir("spatial"), dataset_version, log, lm_boards)


@task(**_persisted("sft"))
def sft(train: list, cfg: Config, run_dir: str, log=None) -> dict:
    run = RunLayout(Path(run_dir))
    return stages.run_sft(run.model("spatial"), train, run.dir("qa"), cfg, run.dir("sft"), log)


@task(**_persisted("dpo"))
def dpo(train: list, cfg: Config, run_dir: str, log=None) -> dict:
    run = RunLayout(Path(run_dir))
    return stages.run_dpo(run.model("sft"), train, run.dir("qa"), cfg, run.dir("dpo"), log)


@task(**_persisted("calibrate"))
def calibrate(calib: list, cfg: Config, run_dir: str) -> dict:
    run = RunLayout(Path(run_dir))
    return stages.run_calibrate(run.model("dpo"), calib, cfg, run.dir("calibrate"))


@task(**_persisted("quantize"))
def quantize(run_dir: str) -> dict:
    run = RunLayout(Path(run_dir))
    return stages.run_quantize(run.model("calibrate"), run.dir("quantize"))


@task(name="mlflow-log", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_stage(cfg: Config, run_id: str, stage: str, figures: dict) -> None:
    """Stage figures to MLflow (retried: SQLite may be briefly locked)."""
    from components.registry import tracking

    tracking.log_metrics(cfg, run_id, figures, stage=stage)
