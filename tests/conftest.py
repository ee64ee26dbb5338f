"""Shared fixtures: real DeepPCB boards, a tiny model config, and a tiny trained model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary Prefect server can take over 20 s to start on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.pop("MLFLOW_TRACKING_URI", None)

REPO = Path(__file__).resolve().parents[1]

# A model small enough to build, train a few steps and answer in seconds.
TINY = [
    "model.input_size=224", "model.text_hidden=64", "model.text_layers=1", "model.text_heads=2",
    "model.vision_hidden=32", "model.vision_depth=1", "model.vision_heads=2", "model.head_channels=16",
    "model.max_regions=8", "model.region_floor=0.0", "model.refine_floor=0.0",
    "train.spatial_minutes=0.05", "train.spatial_max_epochs=1", "train.spatial_batch=2",
    "train.warmup_steps=3", "train.warmup_batch=4", "train.sft_max_steps=2", "train.sft_batch=2", "train.dpo_max_steps=2", "train.dpo_batch=2",
    "train.refine_epochs=1", "train.refine_batch=16",
    "train.threads=1", "qa.phrasings_per_kind=1",
]


def data_root() -> Path:
    return Path(os.environ.get("DEFECTQA_DEEPPCB") or REPO / "../shared/data/deeppcb").resolve()


@pytest.fixture(scope="session")
def deeppcb_dir() -> Path:
    root = data_root()
    if not (root / "group00041").is_dir():
        pytest.skip(f"DeepPCB data not found at {root} (set DEFECTQA_DEEPPCB)")
    return root


def tiny_cfg(workdir: Path):
    from components import config

    cfg = config.load(None, TINY)
    cfg.paths.workdir = str(workdir)
    return cfg


@pytest.fixture(scope="session")
def boards(deeppcb_dir):
    """Four real boards of group 00041 and two of group 13000."""
    from components.data.records import read_deeppcb

    samples = read_deeppcb(deeppcb_dir / "group00041")[:4] + read_deeppcb(deeppcb_dir / "group13000")[:2]
    return samples


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, boards) -> Path:
    """A tiny model trained through every stage (spatial, SFT, DPO, calibration, int8)."""
    from components.train import stages

    work = tmp_path_factory.mktemp("tiny-model")
    cfg = tiny_cfg(work)
    train, calib = boards[:4], boards[4:]
    stages.make_qa(train, cfg, work / "qa")
    stages.run_spatial(train, cfg, work / "spatial", "test-version")
    stages.run_sft(work / "spatial" / "model", train, work / "qa", cfg, work / "sft")
    stages.run_dpo(work / "sft" / "model", train, work / "qa", cfg, work / "dpo")
    stages.run_calibrate(work / "dpo" / "model", calib, cfg, work / "calibrated")
    stages.run_quantize(work / "calibrated" / "model", work / "int8")
    return work
