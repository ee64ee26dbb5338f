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
DEEPPCB_SIZE = (640, 640)
"""Every DeepPCB scan's (width, height)."""


def deeppcb_sizes(samples) -> dict[str, tuple[int, int]]:
    """The QA generator's image sizes (sample_id -> size) of real DeepPCB boards."""
    return dict.fromkeys((s.sample_id for s in samples), DEEPPCB_SIZE)


def pcb_words():
    """The pcb line's class words (lines/pcb.yaml), what the QA generator and tokenizer are given."""
    from components.line import read_line

    return read_line("pcb").line.words

# A model small enough to build, train a few steps and answer in seconds.
TINY = [
    "model.input_size=224", "model.text_hidden=64", "model.text_layers=1", "model.text_heads=2",
    "model.vision_hidden=32", "model.vision_depth=1", "model.vision_heads=2", "model.head_channels=16",
    "model.max_regions=8", "model.region_floor=0.0", "model.refine_floor=0.0",
    "train.spatial_steps=4", "train.spatial_max_epochs=1", "train.spatial_batch=2",
    "train.warmup_steps=3", "train.warmup_batch=4", "train.sft_max_steps=2", "train.sft_batch=2",
    "train.dpo_max_steps=2", "train.dpo_batch=2",
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
    from components.config import CLASSES
    from components.data.records import read_deeppcb

    samples = read_deeppcb(deeppcb_dir / "group00041", CLASSES)[:4] + read_deeppcb(deeppcb_dir / "group13000", CLASSES)[:2]
    return samples


class Recording:
    """A config (or one of its sections) that notes every value read from it as `section.key`,
    so a test can check each stage reads only what its identity declares (components/pipeline.py)."""

    def __init__(self, target, seen: set[str], prefix: str = ""):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_seen", seen)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str):
        import dataclasses

        value = getattr(self._target, name)
        key = f"{self._prefix}{name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return Recording(value, self._seen, f"{key}.")
        if not callable(value):
            self._seen.add(key)
        return value


READS = "config-reads.json"
"""In the tiny model's run folder: the config values each stage read while it trained."""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, boards):
    """A tiny model trained through every stage (spatial, SFT, DPO, calibration, int8): its
    RunLayout. Each stage gets a recording config; what it read is in `<root>/config-reads.json`."""
    import json

    from components.pipeline import RunLayout
    from components.train import stages

    work = tmp_path_factory.mktemp("tiny-model")
    cfg, run, reads = tiny_cfg(work), RunLayout(work), {}

    def recorded(stage: str):
        return Recording(cfg, reads.setdefault(stage, set()))

    train, calib = boards[:4], boards[4:]
    stages.make_qa(train, recorded("qa"), run.dir("qa"))
    stages.run_spatial(train, recorded("spatial"), run.dir("spatial"), "test-version")
    stages.run_sft(run.model("spatial"), train, run.dir("qa"), recorded("sft"), run.dir("sft"))
    stages.run_dpo(run.model("sft"), train, run.dir("qa"), recorded("dpo"), run.dir("dpo"))
    stages.run_calibrate(run.model("dpo"), calib, recorded("calibrate"), run.dir("calibrate"))
    stages.run_quantize(run.model("calibrate"), run.dir("quantize"))
    (work / READS).write_text(json.dumps({k: sorted(v) for k, v in reads.items()}, indent=2))
    return run


WAFER_TINY = [
    "wafer.input_size=16", "wafer.patch_size=4", "wafer.vision_hidden=16", "wafer.vision_depth=1", "wafer.vision_heads=2",
    "wafer.head_channels=8", "wafer.steps=80", "wafer.batch_size=32", "wafer.lm_hidden=32", "wafer.lm_maps=400",
    "wafer.sft_steps=80", "wafer.sft_batch=8", "wafer.dpo_steps=4", "wafer.dpo_batch=8", "wafer.latency_questions=10",
]
"""A wafer model small enough to train and answer in seconds."""


def wafer_sample(path: str | Path, per_label: int) -> list:
    """Up to per_label real maps of each WM-811K label of an .npz part, in the part's order."""
    from components.data.wafer import read_npz

    seen: dict[str, int] = {}
    out = []
    for m in read_npz(path):
        if seen.get(m.label, 0) < per_label:
            seen[m.label] = seen.get(m.label, 0) + 1
            out.append(m)
    return out


def wm811k_root() -> Path:
    return (REPO / "../shared/data/wm811k").resolve()


@pytest.fixture(scope="session")
def wafer_model(tmp_path_factory):
    """(config, a tiny wafer model trained on 40 real train maps per label, its folder)."""
    from components import config
    from components.train.wafer_lm import MODEL_DIR, train_wafer_model

    cfg = config.load(None, WAFER_TINY, line="wafer")
    out = tmp_path_factory.mktemp("wafer-model")
    inspector, _ = train_wafer_model(wafer_sample(wm811k_root() / "train.npz", 40), cfg, out)
    return cfg, inspector, out / MODEL_DIR
