"""The wafer line's tasks: ingest and validate a drop of bin maps, train the model on every
accepted map, evaluate a model folder on the gate's held-out maps."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.config import Config
from components.data import wafer_drop
from components.data.wafer import read_npz
from components.evaluation.columns import headline
from components.evaluation.run import evaluate_wafer_model
from components.train.wafer_lm import MODEL_DIR, train_wafer_model


@task(name="wafer-ingest", retries=1, retry_delay_seconds=5)
def ingest(drop: str, month: str, cfg: Config) -> dict:
    """Normalise the drop (.npz or map PNGs + labels.csv) into the month's data area."""
    return wafer_drop.ingest_wafer(Path(drop), month, cfg)


@task(name="wafer-validate", cache_policy=NO_CACHE)
def validate(month: str, cfg: Config) -> dict:
    """GX checks; bad maps quarantined with reasons; the accepted maps' DVC hash is the dataset version."""
    return wafer_drop.validate_wafer(month, cfg)


def _key(context, params) -> str:
    return f"wafer-train-{params['run_dir']}"


@task(name="wafer-train", cache_key_fn=_key, persist_result=True)
def train(cfg: Config, run_dir: str, log=None) -> dict:
    """The pattern branch, then the language model's SFT and DPO, on every accepted map (cached on
    the run folder, whose name is the dataset version and what training reads)."""
    _, summary = train_wafer_model(wafer_drop.accepted_maps(cfg), cfg, Path(run_dir), log)
    return summary


@task(name="wafer-evaluate", cache_policy=NO_CACHE)
def evaluate(model_dir: str, cfg: Config, out_dir: str, name: str) -> dict:
    """Headline figures of a model folder on the gate's held-out maps (wafer.heldout_maps); report,
    metrics.json and the per-map sums land in out_dir."""
    maps = read_npz(cfg.wafer.heldout_maps)
    return headline(evaluate_wafer_model(Path(model_dir), maps, cfg, Path(out_dir), name))


def model_dir(run_dir: str) -> str:
    return str(Path(run_dir) / MODEL_DIR)
