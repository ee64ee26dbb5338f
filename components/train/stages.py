"""The training stages as functions of folders: what the Prefect tasks and the DVC stages call.

Each stage reads a model folder (or none), writes a new one, and returns a small dict
of figures for MLflow. Re-running a finished stage is a no-op (a `stage.json` marker
holds its figures), and trainers resume from their checkpoints after a kill.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from components.config import Config
from components.data.records import Sample
from components.model.vlm import DefectVLM, Meta
from components.qa import generate as qagen
from components.train import warm_start

DONE = "stage.json"
VIEWS = "views.json"
Log = Callable[[int, dict], None] | None


def finished(out: Path) -> dict | None:
    return json.loads((out / DONE).read_text()) if (out / DONE).exists() else None


def _finish(out: Path, figures: dict) -> dict:
    (out / DONE).write_text(json.dumps(figures, indent=2))
    return figures


def make_qa(samples: list[Sample], cfg: Config, out: Path) -> dict:
    """QA pairs and DPO preference pairs as JSONL (deterministic in cfg.qa.seed)."""
    if (done := finished(out)) is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    sizes = image_sizes(samples)
    pairs = qagen.generate_qa(samples, cfg.qa, cfg.data.classes, cfg.line.words, sizes, cfg.line.items)
    prefs = qagen.generate_preferences(pairs, cfg.qa, cfg.data.classes, sizes)
    _write_jsonl(out / "qa.jsonl", [qagen.qa_to_json(p) for p in pairs])
    _write_jsonl(out / "preferences.jsonl", [qagen.pref_to_json(p) for p in prefs])
    kinds = {k: sum(p.kind == k for p in pairs) for k in sorted({p.kind for p in pairs})}
    reasons = {r: sum(p.reason == r for p in prefs) for r in sorted({p.reason for p in prefs})}
    return _finish(out, {"qa_pairs": len(pairs), "preference_pairs": len(prefs), "kinds": kinds, "reasons": reasons})


def image_sizes(samples: list[Sample]) -> qagen.Sizes:
    """Each sample's image size (its header only): a line's images may differ in size within its range."""
    from components.model.fuse import image_size

    return {s.sample_id: image_size(s.test_path) for s in samples}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def new_model(cfg: Config, dataset_version: str = "") -> DefectVLM:
    from components.model.build import build

    model, processor = build(cfg)
    m = cfg.model
    refiner = ({"floor": m.refine_floor, "crop": m.refine_crop, "context": m.refine_context, "nms": m.refine_nms_iou,
                "passes": m.refine_passes, "max_side": m.refine_max_side,
                "merge_gap": m.refine_merge_gap if m.refine_merge_touching else None, "merge_overlap": m.refine_merge_overlap,
                "topology": m.refine_topology, "tta_views": m.refine_tta_views}
               if m.refine else {})
    meta = Meta(list(cfg.data.classes), m.input_size, m.patch_size, m.max_regions, m.region_floor, m.head_channels,
                dataset_version=dataset_version, refiner=refiner,
                words={c: [list(p) for p in pairs] for c, pairs in cfg.line.words.items()}, items=list(cfg.line.items),
                tta_views=m.tta_views)
    return DefectVLM(model, processor, meta)


def lm_samples(splits: dict[str, list[Sample]], cfg: Config) -> list[Sample]:
    """The boards the language model learns on (cfg.train.lm_split; train when calib is empty)."""
    return splits.get(cfg.train.lm_split) or splits["train"]


def run_spatial(train: list[Sample], cfg: Config, out: Path, dataset_version: str, log: Log = None,
                lm_boards: list[Sample] | None = None) -> dict:
    """Stage 1: build the model and train its vision tower + spatial head, then (model.refine)
    the refiner on the head's proposals; then propose regions on the language model's
    boards (lm_boards, default: train)."""
    import torch

    from components.train.images import FusedSet
    from components.train.spatial import train_spatial

    if (done := finished(out)) is not None:
        return done
    torch.set_num_threads(cfg.train.threads)
    t = warm_start.scaled(cfg.train)
    vlm = new_model(cfg, dataset_version)
    if t.warm_start:
        warm_start.load_weights(vlm, t.warm_start)
    data = FusedSet(train, cfg.data.classes, cfg.model.input_size, t.spatial_template_share, t.seed,
                    t.spatial_no_template_share)
    figures = train_spatial(vlm, data, t, out / "work", log)
    if vlm.refiner is not None:
        figures.update(_train_refiner(vlm, data, t, cfg.eval.iou))
    vlm.save(out / "model")
    n_images = len(data)
    del data  # ~0.6 MB per board: free it before proposing regions
    _views(vlm, lm_boards or train, cfg, out)
    return _finish(out, {**figures, "train_images": n_images, "warm_start": t.warm_start})


def _train_refiner(vlm: DefectVLM, data, t, iou: float) -> dict:
    """Stage 1b: the refiner learns on the trained head's proposals over the training boards
    (t: the stage's training settings, warm_start.scaled)."""
    from components.model.refiner import candidate_limit
    from components.train.refine import Jitter, collect, train_refiner

    start = time.time()
    examples = collect(vlm, vlm.refiner, data, vlm.meta.refiner["floor"], candidate_limit(vlm.meta.max_regions), iou,
                       t.refine_views, t.seed, jitter=Jitter.from_config(t))
    collect_minutes = (time.time() - start) / 60
    return {**train_refiner(vlm.refiner, examples, t.refine_epochs, t.refine_batch, t.refine_lr, t.seed, t.refine_box_weight),
            "refine_collect_minutes": collect_minutes}


def _views(vlm, train: list[Sample], cfg: Config, out: Path):
    """What the language model will see for each training picture: the head's regions.

    The vision tower and head are frozen after stage 1, so the spatial stage computes
    these once (views.json + fused pictures) and SFT and DPO both read them.
    """
    from components.train.lm_data import load_views, region_views, save_views

    if (out / VIEWS).exists():
        return load_views(out / VIEWS)
    views = region_views(vlm, train, cfg.model.input_size, cfg.eval.iou, picture_dir=out / "pictures")
    save_views(views, out / VIEWS)
    return views


def _sample_rows(rows: list[dict], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return rows if len(rows) <= n else rng.sample(rows, n)


def _lm_stage(model_dir: Path, train: list[Sample], cfg: Config, out: Path, make_rows, train_fn, max_steps: str,
              batch: str, name: str, log: Log, warm_up: bool = False) -> dict:
    """Shared body of SFT and DPO: load, build rows on the spatial views, (warm up,) train, save.
    max_steps, batch: the names of the stage's train settings (read from warm_start.scaled)."""
    if (done := finished(out)) is not None:
        return done
    from components.model.tokenizer import plain_words

    t = warm_start.scaled(cfg.train)
    vlm = DefectVLM.load(model_dir, quantize=False)
    all_rows = make_rows(_views(vlm, train, cfg, model_dir.parent), plain_words(vlm.processor.tokenizer))
    rows = _sample_rows(all_rows, getattr(t, max_steps) * getattr(t, batch), t.seed)
    figures = _warm_up(vlm, all_rows, cfg, t, out, log) if warm_up else {}
    figures.update(train_fn(vlm, rows, t, out / "trainer", log))
    vlm.save(out / "model")
    shutil.copyfile(model_dir.parent / VIEWS, out / VIEWS)  # the next stage reads the same views
    return _finish(out, {**figures, f"{name}_rows": len(rows)})


def _warm_up(vlm, rows: list[dict], cfg: Config, t, out: Path, log: Log) -> dict:
    """The text-only warm-up (train/warmup.py) of a from-scratch language model; skipped for a
    pretrained one (sft_lora), a warm start (t: warm_start.scaled) and when SFT resumes from a
    checkpoint (the warm-up is in it)."""
    from components.train.lm_common import last_checkpoint
    from components.train.warmup import train_warmup

    if not t.warmup_steps or t.sft_lora or last_checkpoint(out / "trainer"):
        return {}
    from components.model.tokenizer import plain_words
    from components.train.lm_data import reading_rows

    words = cfg.line.words
    questions = qagen.reading_questions(tuple(cfg.data.classes), words, cfg.qa, t.warmup_steps * t.warmup_reading_batch, t.seed,
                                        cfg.line.items)
    return train_warmup(vlm, rows, t, words, log, reading_rows(questions, plain_words(vlm.processor.tokenizer)))


def run_sft(model_dir: Path, train: list[Sample], qa_dir: Path, cfg: Config, out: Path, log: Log = None) -> dict:
    """Stage 2: SFT of the language model on QA pairs in scan form."""
    from components.train.lm_data import sft_rows
    from components.train.sft import train_sft

    pairs = [qagen.qa_from_json(r, cfg.data.classes) for r in _read_jsonl(qa_dir / "qa.jsonl")]
    return _lm_stage(model_dir, train, cfg, out, lambda views, words: sft_rows(pairs, views, words), train_sft,
                     "sft_max_steps", "sft_batch", "sft", log, warm_up=True)


def run_dpo(model_dir: Path, train: list[Sample], qa_dir: Path, cfg: Config, out: Path, log: Log = None) -> dict:
    """Stage 3: DPO of the language model on preference pairs in scan form."""
    from components.train.dpo import train_dpo
    from components.train.lm_data import dpo_rows

    prefs = [qagen.pref_from_json(r, cfg.data.classes) for r in _read_jsonl(qa_dir / "preferences.jsonl")]
    return _lm_stage(model_dir, train, cfg, out,
                     lambda views, words: dpo_rows(prefs, views, cfg.data.classes, cfg.train.seed, words),
                     train_dpo, "dpo_max_steps", "dpo_batch", "dpo", log)


def run_calibrate(model_dir: Path, calib: list[Sample], cfg: Config, out: Path) -> dict:
    """Stage 4a: fit the confidence calibration on held-out board groups."""
    from components.train.calibrate import fit_calibration

    if (done := finished(out)) is not None:
        return done
    shutil.copytree(model_dir, out / "model", dirs_exist_ok=True)
    figures = fit_calibration(out / "model", calib, cfg)
    return _finish(out, figures)


def run_quantize(model_dir: Path, out: Path) -> dict:
    """Stage 4b: the served artifact: same weights, int8 Linear layers at load time."""
    from components.model.int8 import size_mb
    from components.model.vlm import META_FILE

    if (done := finished(out)) is not None:
        return done
    shutil.copytree(model_dir, out / "model", dirs_exist_ok=True)
    meta_path = out / "model" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["quantize"] = "int8"
    meta_path.write_text(json.dumps(meta, indent=2))
    fp32 = DefectVLM.load(model_dir, quantize=False)
    int8 = DefectVLM.load(out / "model")
    return _finish(out, {"size_mb_fp32": size_mb(fp32.model), "size_mb_int8": size_mb(int8.model)})
