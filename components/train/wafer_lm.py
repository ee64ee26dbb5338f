"""Train the wafer language model: its QA pairs from the accepted maps (the pattern branch's own
evidence on each), trl SFT on the readings, then trl DPO on the preference pairs."""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch

from components.config import Config, WaferConfig
from components.data.split import group_hash_share
from components.data.wafer import WaferMap
from components.model.tokenizer import SCORE_BINS, normalize
from components.model.wafer_inspector import WaferInspector
from components.model.wafer_lm import LMMeta, WaferLM
from components.model.wafer_pattern import WaferPattern
from components.qa.wafer_generate import preference_rows, qa_rows
from components.train.lm_common import LogTo, common_args, last_checkpoint, to_dataset
from components.train.wafer_pattern import draw_weights, train_pattern

Words = dict[str, tuple[tuple[str, str], ...]]
MODEL_DIR = "model"
"""Where in its output folder train_wafer_model saves the model."""


def evidence_of(branch: WaferPattern, maps: list[WaferMap]) -> list[tuple[str, dict[str, float]]]:
    """(label, the branch's calibrated probabilities) per map."""
    probs = branch.probabilities([m.grid for m in maps])
    return [(m.label, dict(zip(branch.meta.labels, p.tolist(), strict=True))) for m, p in zip(maps, probs, strict=True)]


def fold_of(m: WaferMap, folds: int) -> int:
    return int(group_hash_share(f"fold:{m.map_id}") * folds)


def heldout_evidence(branch: WaferPattern, maps: list[WaferMap], pick: list[WaferMap], cfg: WaferConfig,
                     log: Callable[[int, dict], None] | None = None) -> list[tuple[str, dict[str, float]]]:
    """evidence_of each picked map (once per map: the draw repeats maps) from a branch that did not
    train on it: one trained on the other folds of `maps` (cfg.evidence_folds; 1: `branch`'s own)."""
    unique = list({id(m): m for m in pick}.values())
    if cfg.evidence_folds <= 1:
        parts = [(branch, unique)]
    else:
        fold = {id(m): fold_of(m, cfg.evidence_folds) for m in maps}
        parts = [(train_pattern([m for m in maps if fold[id(m)] != k], tuple(branch.meta.labels), cfg, log)[0],
                  [m for m in unique if fold[id(m)] == k]) for k in range(cfg.evidence_folds)]
    out = {id(m): e for b, part in parts if part for m, e in zip(part, evidence_of(b, part), strict=True)}
    return [out[id(m)] for m in pick]


def lm_rows(branch: WaferPattern, maps: list[WaferMap], words: Words, items: tuple[str, ...],
            cfg: WaferConfig, known: set[str], log: Callable[[int, dict], None] | None = None
            ) -> tuple[list[dict], list[dict]]:
    """(QA rows, preference rows) from a stable draw of cfg.lm_maps maps, with replacement and rare
    labels drawn more often (cfg.lm_balance_power): drawn as the data is, a rare pattern's weak
    evidence is mostly seen on None maps, and the model learns to answer None to it; drawn without
    replacement, a month's few rare maps are each drawn once and None still fills the draw."""
    weights = draw_weights([m.label for m in maps], cfg.lm_balance_power)
    gen = torch.Generator().manual_seed(cfg.seed)
    pick = [maps[i] for i in torch.multinomial(weights, cfg.lm_maps, replacement=True, generator=gen).tolist()]
    evidence = heldout_evidence(branch, maps, pick, cfg, log)
    rows = qa_rows(evidence, words, items, cfg.questions_per_map, cfg.off_share, cfg.evidence_top, SCORE_BINS,
                   cfg.seed, normalize=lambda q: normalize(q, known),
                   embellish_share=cfg.embellish_share, dropout=cfg.word_dropout,
                   off_dropout=cfg.off_word_dropout, name_dropout=cfg.lm_name_dropout,
                   unknown_name_share=cfg.lm_unknown_name_share)
    return rows, preference_rows(rows, evidence, cfg.seed)


def new_lm(labels: tuple[str, ...], words: Words, items: tuple[str, ...], cfg: WaferConfig) -> WaferLM:
    torch.manual_seed(cfg.seed)
    return WaferLM(LMMeta(labels=list(labels), words={k: [list(p) for p in v] for k, v in words.items()},
                          items=list(items), hidden=cfg.lm_hidden, layers=cfg.lm_layers, heads=cfg.lm_heads,
                          evidence_top=cfg.evidence_top, score_bins=SCORE_BINS, kind_floor=cfg.lm_kind_floor))


def train_sft(lm: WaferLM, rows: list[dict], cfg: WaferConfig, out_dir: Path,
              log: Callable[[int, dict], None] | None = None) -> dict:
    """trl SFT on the readings (loss on the completion only), in place; resumes a killed run."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**common_args(cfg.seed, out_dir, cfg.sft_steps, cfg.sft_batch, cfg.sft_lr),
                     completion_only_loss=True)
    data = to_dataset([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    trainer = SFTTrainer(model=lm.model, args=args, train_dataset=data, processing_class=lm.tokenizer,
                         callbacks=[LogTo(log, "wafer_sft")])
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir))
    return {"sft_pairs": len(rows), "sft_loss": float(result.training_loss), "sft_s": time.perf_counter() - start}


def train_dpo(lm: WaferLM, pairs: list[dict], cfg: WaferConfig, out_dir: Path,
              log: Callable[[int, dict], None] | None = None) -> dict:
    """trl DPO on the preference pairs, in place, against a frozen copy of the SFT model."""
    from trl import DPOConfig, DPOTrainer

    if not cfg.dpo_steps:
        return {"dpo_pairs": 0}
    args = DPOConfig(**common_args(cfg.seed, out_dir, cfg.dpo_steps, cfg.dpo_batch, cfg.dpo_lr), beta=cfg.dpo_beta)
    data = to_dataset([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    trainer = DPOTrainer(model=lm.model, ref_model=copy.deepcopy(lm.model).eval(), args=args, train_dataset=data,
                         processing_class=lm.tokenizer, callbacks=[LogTo(log, "wafer_dpo")])
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir))
    margins = [h["rewards/margins"] for h in trainer.state.log_history if "rewards/margins" in h]
    return {"dpo_pairs": len(pairs), "dpo_loss": float(result.training_loss),
            "dpo_reward_margin": float(margins[-1]) if margins else float("nan"), "dpo_s": time.perf_counter() - start}


def train_wafer_model(maps: list[WaferMap], cfg: Config, out_dir: Path,
                      log: Callable[[int, dict], None] | None = None) -> tuple[WaferInspector, dict]:
    """The wafer model from accepted maps: the pattern branch (and its temperature), then the
    language model's SFT and DPO on pairs made with the branch's evidence; saved to out_dir/MODEL_DIR."""
    labels, words, items = tuple(cfg.data.classes), cfg.line.words, cfg.line.items
    branch, summary = train_pattern(maps, labels, cfg.wafer, log)
    lm = new_lm(labels, words, items, cfg.wafer)
    rows, pairs = lm_rows(branch, maps, words, items, cfg.wafer, lm.known, log)
    summary |= train_sft(lm, rows, cfg.wafer, out_dir / "sft", log)
    summary |= train_dpo(lm, pairs, cfg.wafer, out_dir / "dpo", log)
    inspector = WaferInspector(branch, lm)
    inspector.save(out_dir / MODEL_DIR)
    return inspector, summary
