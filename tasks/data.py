"""Data tasks: ingest a drop, validate it, split the accepted set by board group."""
from __future__ import annotations

from prefect import task

from components.config import Config
from components.data import ingest as ingest_mod, split as split_mod, validate as validate_mod


@task(name="ingest", retries=1, retry_delay_seconds=5)
def ingest(drop_dir: str, month: str, cfg: Config) -> dict:
    """Copy the drop into the data area and version it with DVC (retried: a push can fail transiently)."""
    return ingest_mod.ingest(drop_dir, month, cfg).__dict__


@task(name="validate")
def validate(month: str, cfg: Config) -> dict:
    """Great Expectations checks; quarantine bad rows; the accepted set's DVC hash is the dataset version."""
    return validate_mod.validate_drop(month, cfg).to_dict()


@task(name="split")
def split(cfg: Config) -> dict:
    """Accepted samples split by whole board group: train / calib / eval."""
    return split_mod.split_samples(split_mod.load_accepted(cfg), cfg)
