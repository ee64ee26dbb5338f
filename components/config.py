"""One typed configuration for the whole pipeline.

Defaults live here; the product line's file (`lines/<line>.yaml`, `--line`, default pcb:
components/line.py) sets the line's values over them, `params.yaml` (also read by DVC)
overrides both, and the CLI overrides all three with `--set section.key=value`. The pcb line
restates the defaults, so `--line pcb` changes nothing. Every field carries its help as data,
`field(..., metadata={"help": ...})` (what it means, its unit, what it affects), which
`describe` returns and `defectqa config show [SECTION]` prints; docs/ARCHITECTURE.md says
which module uses each section. Why some defaults are what they are (measurements, history)
is in docs/RESULTS.md, not here, so the help does not age.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.line import DEFAULT_LINE, FILE_ONLY, LineConfig, LineError, LineFile, check as check_line, help_meta, read_line

DATASET_VERSION_FILE = "data/dataset_version.txt"
"""Relative to the workdir (`PathsConfig.dataset_version_file`; dvc.yaml names it too)."""
CLASSES: tuple[str, ...] = ("open", "short", "mousebite", "spur", "copper", "pin-hole")

_help = help_meta


@dataclass
class PathsConfig:
    workdir: str = field(default=".defectqa", metadata=_help(
        "State folder, relative to where the command runs: the data area (a DVC repo), the MLflow SQLite database "
        "and artifacts, the Prefect home, the run folders and the models."))
    bundled_data: str = field(default="../shared/data/deeppcb", metadata=_help(
        "The bundled DeepPCB folder that `make run` (`retrain --bundled-month`) replays as monthly drops; also the "
        "held-out data `defectqa ablate` reads by default."))
    dvc_remote: str = field(default="", metadata=_help(
        "DVC remote URL (s3://..., /mnt/share/...) every accepted dataset version is pushed to; empty = a local "
        "folder `<workdir>/dvc-remote`."))
    tracking_uri: str = field(default="", metadata=_help(
        "MLflow tracking URI of the runs and the model registry; empty = $MLFLOW_TRACKING_URI, else "
        "sqlite:///<workdir>/mlflow.db."))
    line: str = field(default=DEFAULT_LINE, metadata=_help(
        "The product line whose data area, drops and run folders these are: set from the line (`--line`), not "
        "by hand. The pcb line's live in the workdir itself, another line's under <workdir>/lines/<line>/."))

    @property
    def root(self) -> Path:
        return Path(self.workdir).resolve()

    @property
    def area(self) -> Path:
        """The line's own folder: its months never mix with another line's (MLflow, Prefect and the
        DVC remote are shared; each line's data area is a DVC repo of its own)."""
        return self.root if self.line == DEFAULT_LINE else self.root / "lines" / self.line

    @property
    def data_dir(self) -> Path:
        return self.area / "data"

    @property
    def dataset_version_file(self) -> Path:
        """Holds the current dataset version; rewritten whenever a month is accepted (a DVC dep)."""
        return self.area / DATASET_VERSION_FILE

    @property
    def incoming_dir(self) -> Path:
        """Where each month's drop arrives, one sub-folder per month (`incoming/2026-03/`)."""
        return self.area / "incoming"

    @property
    def runs_dir(self) -> Path:
        """The flow's run folders, one per dataset version and training config (pipeline.run_key)."""
        return self.area / "runs"

    @property
    def pipeline_dir(self) -> Path:
        """The one run folder `defectqa stage NAME` (and so `dvc repro`) works in."""
        return self.area / "pipeline"

    def mlflow_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.root / 'mlflow.db'}"


@dataclass
class DataConfig:
    classes: tuple[str, ...] = field(default=CLASSES, metadata=_help(
        "Defect vocabulary, comma-separated, set by the line file (its words' classes, in order): DeepPCB type k "
        "(1-based) is classes[k-1]. Validation refuses other class names; the model's class tokens use these."))
    max_bad_share: float = field(default=0.2, metadata=_help(
        "Largest share (0-1) of a drop's rows validation may quarantine; a drop with a larger share is rejected "
        "whole and stops the flow."))
    drift_tolerance: float = field(default=0.15, metadata=_help(
        "Largest change (0-1, absolute) of a class's share of boxes vs the previous accepted month before the "
        "drift report flags it; a warning, never a stop."))
    class_map: tuple[str, ...] = field(default=(), metadata=_help(
        "Renames at ingest, comma-separated old=new (e.g. Scratch=scratches; `--map` on retrain and ingest): a "
        "VOC/COCO label old is read as the line's class new. Labels neither renamed nor a class are quarantined."))
    holdout_groups: tuple[str, ...] = field(default=("group92000",), metadata=_help(
        "Board groups never trained on (comma-separated): the held-out evaluation set the gate judges."))
    calib_groups: tuple[str, ...] = field(default=("group77000",), metadata=_help(
        "Board groups kept out of training to fit the confidence calibration (comma-separated); also the "
        "language model's boards when train.lm_split=calib."))
    holdout_share: float = field(default=0.2, metadata=_help(
        "Share (0-1) of each drop's new groups held out, never trained on (rounded half up: a one-group drop "
        "at 0.2 trains on it); listed holdout_groups count first, then lowest name hash. A group keeps its "
        "first drop's split: the gate judges the union held out so far (components/data/split.py)."))
    calib_share: float = field(default=0.1, metadata=_help(
        "When none of calib_groups is among the accepted boards (another line's drops): share (0-1) of the "
        "groups of each drop that calibrate confidences instead, by the same hash (after holdout_share's)."))


@dataclass
class QAConfig:
    seed: int = field(default=0, metadata=_help(
        "Random seed of the QA generation: which questions, phrasings and templates each image gets (the DPO "
        "preference pairs use seed + 1)."))
    phrasings_per_kind: int = field(default=2, metadata=_help(
        "How many phrasings of each question kind are sampled per image; more gives SFT and DPO more rows."))
    template_share: float = field(default=1.0, metadata=_help(
        "Share (0-1) of images whose defect-free template also yields 'no defects' QA pairs."))
    rejected_per_chosen: int = field(default=1, metadata=_help(
        "DPO preference pairs made per chosen (correct) answer, each with a generated wrong answer as rejected."))
    out_of_scope_share: float = field(default=0.5, metadata=_help(
        "Chance (0-1), per image and round of phrasings, of one question not about defects (\"What is the "
        "weather?\"), which the model learns to decline."))
    embellish_share: float = field(default=0.25, metadata=_help(
        "Share (0-1) of training questions typed as people also type them: a lead (\"hey,\"), a filler phrase "
        "(\"in this image\"), lower case, no question mark (qa/generate.embellish)."))


@dataclass
class ModelConfig:
    base: str = field(default="", metadata=_help(
        "Empty = build the small embedded Qwen3-VL from the sizes below, with random weights; else a local "
        "checkpoint folder to start from (no hub access)."))
    input_size: int = field(default=448, metadata=_help(
        "Side, in pixels, of the fused model input (test, template, |diff|) every board is resized to; with "
        "patch_size it sets the heatmap grid."))
    text_hidden: int = field(default=256, metadata=_help(
        "Width of the embedded language model's hidden states (its MLP is 4x this; the vision tower's output is "
        "projected to it). Not used with model.base."))
    text_layers: int = field(default=4, metadata=_help(
        "Number of transformer layers of the embedded language model. Not used with model.base."))
    text_heads: int = field(default=4, metadata=_help(
        "Attention heads of the embedded language model; text_hidden / text_heads is the head size. Not used "
        "with model.base."))
    vision_hidden: int = field(default=128, metadata=_help(
        "Width of the embedded vision tower's hidden states (its MLP is 4x this). Not used with model.base."))
    vision_depth: int = field(default=4, metadata=_help(
        "Number of transformer blocks of the embedded vision tower. Not used with model.base."))
    vision_heads: int = field(default=4, metadata=_help(
        "Attention heads of the embedded vision tower. Not used with model.base."))
    patch_size: int = field(default=16, metadata=_help(
        "Side, in input pixels, of one vision patch: the heatmap head predicts on an (input_size / patch_size) "
        "square grid, one cell per patch."))
    tta_views: int = field(default=1, metadata=_help(
        "Test-time augmentation of the spatial branch (saved in the model's meta): its maps averaged over this "
        "many of the 8 flips/rotations training also shows (1: none; 2: + horizontal flip; 4: + vertical flips; "
        "8: all, + transposes). Costs one vision pass per view; `benchmarks/tta.py` measures it."))
    max_regions: int = field(default=16, metadata=_help(
        "At most this many spatial-branch candidates (regions) are shown to the language model per board; the "
        "tokenizer has one region token for each."))
    region_floor: float = field(default=0.15, metadata=_help(
        "Candidates whose score (0-1, after the refiner when it is on) is below this never reach the language "
        "model."))
    head_channels: int = field(default=128, metadata=_help(
        "Channels of the heatmap head's convolutional trunk, which predicts each class's heatmap, the sub-cell "
        "offset and the box size per patch."))
    refine: bool = field(default=True, metadata=_help(
        "Failure-aware refinement: a second stage re-checks every candidate's class (or \"none\") and corrects "
        "its box before the language model sees it."))
    refine_floor: float = field(default=0.05, metadata=_help(
        "Candidates down to this head score (0-1) go to the refiner, which decides; region_floor then applies "
        "to its scores."))
    refine_crop: int = field(default=32, metadata=_help(
        "Side, in pixels, the refiner's crop of each candidate is resampled to."))
    refine_context: float = field(default=2.0, metadata=_help(
        "The refiner's window is this many times the candidate box's longer side (24 model pixels at least, "
        "refine_max_side at most)."))
    refine_topology: bool = field(default=True, metadata=_help(
        "The refiner also reads, per candidate window, how the board's connected bright and dark pieces differ "
        "in number from its template's (an open adds a piece, a short removes one; components/model/topology.py)."))
    refine_max_side: float = field(default=160.0, metadata=_help(
        "Largest side of the refiner's window, in model pixels: room for a long open and its ends."))
    refine_nms_iou: float = field(default=0.5, metadata=_help(
        "After the refiner corrects the boxes, of candidates overlapping by more than this IoU only the surest "
        "stays."))
    refine_tta_views: int = field(default=1, metadata=_help(
        "Test-time augmentation of the refiner (saved in the model's meta): each crop also classified in this "
        "many of the 8 flips/rotations its training shows (1: none; 8: all), the class the mean probability, the "
        "box the mean box. `benchmarks/tta.py` measures it."))
    refine_passes: int = field(default=3, metadata=_help(
        "Times the refiner re-checks the survivors on windows around their corrected boxes (>= 1)."))
    refine_merge_touching: bool = field(default=True, metadata=_help(
        "Same-class boxes that follow one another end to end become one (a long open proposed twice); see "
        "refine_merge_gap and refine_merge_overlap."))
    refine_merge_gap: float = field(default=2.0, metadata=_help(
        "With refine_merge_touching: boxes end to end merge only when at most this many model pixels apart."))
    refine_merge_overlap: float = field(default=0.5, metadata=_help(
        "With refine_merge_touching: boxes end to end merge only if, across the direction they follow one "
        "another in, they overlap by at least this share (0-1) of the narrower one."))


@dataclass
class TrainConfig:
    seed: int = field(default=0, metadata=_help(
        "Random seed of training: model initialisation, the spatial, refiner, warm-up, SFT and DPO loops, and "
        "which rows SFT and DPO sample."))
    threads: int = field(default=2, metadata=_help(
        "Torch CPU threads, set when the spatial stage starts (process-wide: the later stages of the same "
        "process keep it); match the machine's cores."))
    warm_start: str = field(default="", metadata=_help(
        "Continual training: start from this model's weights instead of from scratch; a model folder, or "
        "`champion` (the line's current one; none yet: cold). Empty: cold. Warm, stages train less "
        "(warm_start_share, warm_start_lr_share) and skip the text-only warm-up (components/train/warm_start.py). "
        "Leave-one-group-out folds always start cold."))
    warm_start_share: float = field(default=0.4, metadata=_help(
        "With warm_start: share (0-1] of each stage's steps (spatial steps and minutes, refiner epochs, SFT "
        "and DPO steps) that a warm start trains."))
    warm_start_lr_share: float = field(default=0.5, metadata=_help(
        "With warm_start: each stage's peak learning rate is multiplied by this (0-1]: a trained model is "
        "fine-tuned, not retrained."))
    spatial_steps: int = field(default=520, metadata=_help(
        "Optimizer steps of the spatial-branch training (vision tower + heatmap head); its learning rate "
        "decays over them. A step count, not a time, so that a slower or busier machine gives the same model, "
        "later."))
    spatial_minutes: float = field(default=30.0, metadata=_help(
        "Wall-clock limit, in minutes, of the spatial-branch training: it stops there even before "
        "spatial_steps (its learning-rate schedule then ends unfinished; the stage's figures say so). "
        "0 = no limit."))
    spatial_max_epochs: int = field(default=60, metadata=_help(
        "The spatial-branch training also stops after this many passes over its boards, if that comes before "
        "spatial_steps."))
    spatial_batch: int = field(default=8, metadata=_help(
        "Fused boards per step of the spatial-branch training."))
    spatial_lr: float = field(default=1e-3, metadata=_help(
        "Peak AdamW learning rate of the spatial-branch training (cosine decay to 5 % of it over "
        "spatial_steps)."))
    lm_split: str = field(default="train", metadata=_help(
        "Boards the language model learns on (SFT, DPO): 'calib' = groups the spatial branch never trained on, "
        "so the region scores it sees match those on new boards; 'train' = the spatial branch's own boards "
        "(overfit, confident scores). Empty calib -> train."))
    calibration: str = field(default="platt_prior", metadata=_help(
        "How the calibration stage fits a, b of sigmoid(a * logit(score) + b) on the calibration boards: "
        "platt_prior (maximum a posteriori under a prior at the identity, calibration_prior), platt (plain "
        "logistic regression) or identity (the refiner's own probabilities). Fitted on one group, plain Platt "
        "made the confidences worse on the other in both directions (benchmarks/calibration.py)."))
    calibration_prior: float = field(default=300.0, metadata=_help(
        "Strength of platt_prior's prior at a = 1, b = 0, in reported defects' worth of evidence (a calibration "
        "group reports some 500): the fit moves from the refiner's own probabilities only as far as the "
        "calibration boards clearly ask."))
    warmup_steps: int = field(default=1200, metadata=_help(
        "Text-only steps that teach the from-scratch language model its rules before SFT (0 = skip; skipped "
        "anyway with sft_lora)."))
    warmup_batch: int = field(default=16, metadata=_help(
        "Text-only rows per warm-up step."))
    warmup_lr: float = field(default=2e-3, metadata=_help(
        "Peak AdamW learning rate of the warm-up (one-cycle over warmup_steps)."))
    warmup_reading_batch: int = field(default=16, metadata=_help(
        "Per warm-up step, also this many freshly generated questions with their reading alone (no regions: "
        "short rows), so the reading learns from far more wordings than the QA pairs hold (0 = none)."))
    warmup_length_groups: int = field(default=8, metadata=_help(
        "The warm-up draws this many batches' rows at once and batches them by length, so a batch pads "
        "little (padding is computed for nothing; random batches pad far more); 1 = plain random batches."))
    warmup_word_dropout: float = field(default=0.1, metadata=_help(
        "Chance (0-1), per question word that does not say what is asked (train/warmup.key_words), that the "
        "warm-up shows it as [UNK], so words training never saw do not change the reading."))
    warmup_off_topic_word_dropout: float = field(default=0.4, metadata=_help(
        "The same chance for a question that holds no key word at all (no class, thing, area, count or defect "
        "word: an everyday request), so a request of words training never saw still reads as not about defects."))
    sft_epochs: float = field(default=1.0, metadata=_help(
        "Passes over the SFT rows; the steps are epochs x rows / sft_batch, at most sft_max_steps."))
    sft_max_steps: int = field(default=150, metadata=_help(
        "Most SFT optimizer steps; SFT also samples at most sft_max_steps x sft_batch rows."))
    sft_batch: int = field(default=8, metadata=_help(
        "SFT rows (question-answer pairs on fused boards) per step."))
    sft_lr: float = field(default=5e-4, metadata=_help(
        "Peak learning rate of SFT (trl; cosine schedule with a short warm-up)."))
    sft_lora: bool = field(default=False, metadata=_help(
        "LoRA for SFT (and no text-only warm-up): off for the from-scratch default (random weights), on for a "
        "real checkpoint (model.base)."))
    dpo_max_steps: int = field(default=60, metadata=_help(
        "DPO optimizer steps; DPO also samples at most dpo_max_steps x dpo_batch preference pairs."))
    dpo_batch: int = field(default=4, metadata=_help(
        "DPO preference pairs per step."))
    dpo_lr: float = field(default=5e-5, metadata=_help(
        "Peak learning rate of DPO (trl; cosine schedule with a short warm-up)."))
    dpo_beta: float = field(default=0.1, metadata=_help(
        "DPO beta: how strongly the policy is kept near the SFT model (larger = closer)."))
    lora_r: int = field(default=16, metadata=_help(
        "LoRA rank on the language model's attention and MLP projections: DPO always trains a LoRA adapter "
        "(merged after), SFT only with train.sft_lora."))
    lora_alpha: int = field(default=32, metadata=_help(
        "LoRA scaling alpha (the adapter's update is scaled by alpha / lora_r), for DPO and LoRA SFT."))
    bf16: bool = field(default=False, metadata=_help(
        "bf16 autocast for the spatial-branch training; off by default because CPU attention backward is far "
        "slower in bf16 (docs/RESULTS.md, \"Why some defaults are what they are\")."))
    spatial_template_share: float = field(default=0.1, metadata=_help(
        "Share (0-1) of boards whose defect-free template joins spatial training as a negative."))
    spatial_no_template_share: float = field(default=0.25, metadata=_help(
        "Share (0-1) of boards that also join the spatial branch's and the refiner's training fused with no "
        "template, each with its template alone as a negative, so no-template mode works too."))
    refine_views: int = field(default=1, metadata=_help(
        "Refiner training: dihedral copies of each training board the spatial branch proposes on."))
    refine_epochs: int = field(default=3, metadata=_help(
        "Passes of the refiner training over its collected examples (benchmarks/refiner_epochs.py measures the choice)."))
    refine_batch: int = field(default=128, metadata=_help(
        "Refiner examples (candidate crops) per step; fewer examples than one batch leave the refiner as "
        "initialised."))
    refine_lr: float = field(default=2e-3, metadata=_help(
        "Peak AdamW learning rate of the refiner (one-cycle)."))
    refine_box_weight: float = field(default=1.0, metadata=_help(
        "Weight of the refiner's box regression (smooth L1, window units) against its class loss."))
    refine_jitter: int = field(default=4, metadata=_help(
        "Extra box-only examples per training defect: its box shifted and resized at random, as the head's "
        "short or off-centre candidates and the refiner's own later passes present it."))
    refine_jitter_shift: float = field(default=0.3, metadata=_help(
        "Largest shift of a jittered box's centre, as a share of the defect's width/height."))
    refine_jitter_min_scale: float = field(default=0.4, metadata=_help(
        "Smallest factor each side of a jittered box is scaled by (the head sizes long defects short)."))
    refine_jitter_max_scale: float = field(default=1.3, metadata=_help(
        "Largest factor each side of a jittered box is scaled by."))


@dataclass
class EvalConfig:
    question: str = field(default="Describe all defects on this board.", metadata=_help(
        "The describe-all question asked of every image: the headline figures (F1, count, ECE, ...) are its "
        "answers'; calibration asks it too."))
    question_suite: bool = field(default=True, metadata=_help(
        "Also ask every image the held-out question suite (evaluation/questions.py: each kind, per-kind "
        "figures the gate judges)."))
    suite_max_images: int = field(default=0, metadata=_help(
        "0 = the suite asks every evaluated board and template; else only the first this many boards."))
    suite_seed: int = field(default=0, metadata=_help(
        "Seeds which held-out wording, class and area each image is asked (deterministic per image id)."))
    max_images: int = field(default=0, metadata=_help(
        "Evaluate (and fit the calibration on) only the first this many boards of a folder (0 = all)."))
    iou: float = field(default=0.33, metadata=_help(
        "DeepPCB's matching rule: a reported defect matches a true one of the same class with IoU >= this; "
        "also used to label the refiner's and the language model's training regions."))
    ece_bins: int = field(default=10, metadata=_help(
        "Equal-width confidence bins over [0, 1] of the reliability table the ECE is computed from (evaluation "
        "and the calibration stage's before/after figures)."))
    batch_size: int = field(default=8, metadata=_help(
        "Boards answered per generate call when scoring (same question, so no padding)."))
    latency_samples: int = field(default=20, metadata=_help(
        "Single-request asks timed for latency_p50_s / latency_p95_s (what an inspector waits)."))
    report_overlays: int = field(default=12, metadata=_help(
        "How many overlay pictures the HTML report embeds."))
    miss_size_edges_px: tuple[float, ...] = field(default=(30.0, 40.0), metadata=_help(
        "The miss report's size bins: edges, in original pixels, of sqrt(box area) (30, 40: small < 30 <= "
        "medium < 40 <= large; DeepPCB's boxes: a third under 32, a third over 37.5)."))
    miss_examples: int = field(default=20, metadata=_help(
        "How many missed defects the miss report lists one by one (the first, in board order)."))
    blur_check_sigma: float = field(default=1.5, metadata=_help(
        "Blur-consistency check: Gaussian sigma, in original pixels, of the blurred copy asked alongside each "
        "board."))
    blur_check_iou: float = field(default=0.3, metadata=_help(
        "Blur-consistency check: a detection is kept if the blurred copy has one with at least this IoU."))
    blur_check_same_class: bool = field(default=False, metadata=_help(
        "Blur-consistency check: the blurred copy's defect must also be of the same class. Off: blur erases what "
        "tells a mousebite from an open (or a spur from a short), so real defects whose class flips would be "
        "dropped; the check is about whether a defect is there."))
    robust_noise_std: float = field(default=12.0, metadata=_help(
        "Robustness: std of the added Gaussian noise, in grey levels (0-255)."))
    robust_blur_sigma: float = field(default=2.0, metadata=_help(
        "Robustness: sigma, in original pixels, of the Gaussian blur."))
    robust_brightness: float = field(default=0.6, metadata=_help(
        "Robustness: brightness factor (PIL ImageEnhance; 1 = unchanged; DeepPCB scans are near binary, so "
        "darken)."))
    robust_jpeg_quality: int = field(default=25, metadata=_help(
        "Robustness: JPEG quality the board is re-encoded at (1-95)."))


@dataclass
class GateConfig:
    """Absolute thresholds on the int8 candidate's held-out metrics, judged as served, each a
    small margin beyond what `make run` measured, so a regression fails; latency is the
    inspector's 2 s. The question suite's thresholds are the targets of the issue that built it
    (every kind of question answered right), met with a margin by the first model that reached
    them (README, "Every question an inspector asks")."""
    min_f1_iou33: float = field(default=0.93, metadata=_help(
        "The candidate's describe-all F1 (same class, IoU >= eval.iou) on the held-out boards must be above "
        "this (0-1)."))
    max_center_rmse_px: float = field(default=5.5, metadata=_help(
        "RMS distance, in original pixels, between matched reported and true box centres must be below this."))
    max_hallucination_rate: float = field(default=0.02, metadata=_help(
        "Share (0-1) of reported defects that overlap no true defect of any class must be below this."))
    max_latency_p95_s: float = field(default=2.0, metadata=_help(
        "95th-percentile seconds of a single ask (eval.latency_samples timed asks) must be below this: the "
        "inspector's wait."))
    min_count_exact: float = field(default=0.90, metadata=_help(
        "Share (0-1) of held-out boards whose describe-all answer has exactly the true number of defects must "
        "be above this."))
    max_ece: float = field(default=0.03, metadata=_help(
        "Expected calibration error of the reported confidences (eval.ece_bins bins) must be below this."))
    max_template_false_alarm: float = field(default=0.01, metadata=_help(
        "Share (0-1) of defect-free templates on which anything is reported must be below this."))
    max_parse_failure_rate: float = field(default=0.001, metadata=_help(
        "Share (0-1) of answers that do not parse must be below this; grammar-constrained decoding makes every "
        "answer parse, and below 1,000 answers one failure fails."))
    min_answer_f1_locate: float = field(default=0.90, metadata=_help(
        "Answer F1 of \"where is the <class>?\" questions (held-out wordings, the asked class's boxes) must be "
        "above this."))
    min_answer_f1_exists: float = field(default=0.90, metadata=_help(
        "Answer F1 of \"is there a <class>?\" questions must be above this."))
    min_answer_f1_count_class: float = field(default=0.90, metadata=_help(
        "Answer F1 of \"how many <class>?\" questions must be above this."))
    min_answer_f1_spatial: float = field(default=0.90, metadata=_help(
        "Answer F1 of \"any defects in the <area>?\" questions (the boxes centred in that area) must be above "
        "this."))
    min_count_exact_count_class: float = field(default=0.90, metadata=_help(
        "Share (0-1) of \"how many <class>?\" answers with exactly the right number must be above this."))
    max_false_none_rate: float = field(default=0.02, metadata=_help(
        "Share (0-1) of questions answered \"none found\" while the asked class / area has a defect must be "
        "below this."))
    min_question_read_accuracy: float = field(default=0.97, metadata=_help(
        "Share (0-1) of questions whose reading (classes or all, count or list, area, out of scope) is right "
        "must be above this."))
    min_macro_f1: float = field(default=0.85, metadata=_help(
        "Wafer lines: macro F1 over the labels of the pattern answers (held-out wordings) must be above this."))
    max_none_false_alarm: float = field(default=0.03, metadata=_help(
        "Wafer lines: share (0-1) of maps labelled None whose answer states a pattern must be below this."))
    min_pattern_recall_min: float = field(default=0.6, metadata=_help(
        "Wafer lines: the worst label's recall of the pattern answers must be above this."))
    min_location_accuracy: float = field(default=0.8, metadata=_help(
        "Wafer lines: share (0-1) of location answers, on maps whose label says where the failing dies are, that "
        "say so must be above this."))
    max_fail_share_mae: float = field(default=0.005, metadata=_help(
        "Wafer lines: mean absolute error (as a fraction of the wafer) of the failing share the answers state must "
        "be below this."))
    primary_metric: str = field(default="f1_iou33", metadata=_help(
        "The figure a candidate must improve or hold against the champion (same boards) to win."))
    champion_margins: dict[str, float] = field(default_factory=lambda: dict(
        f1_iou33=0.02, center_rmse_px=0.5, hallucination_rate=0.01, count_exact=0.05, template_false_alarm=0.01,
        answer_f1_locate=0.05, answer_f1_exists=0.05, answer_f1_count_class=0.05, answer_f1_spatial=0.05,
        count_exact_count_class=0.05, false_none_rate=0.02, question_read_accuracy=0.02, macro_f1=0.02,
        none_false_alarm=0.01, pattern_recall_min=0.08, location_accuracy=0.03, fail_share_mae=0.002), metadata=_help(
        "Non-inferiority margin per figure, in its units: how much worse than the champion's, at the pessimistic "
        "end of the paired interval, a candidate may be (registry/gate.py); each must be wider than the "
        "interval's half-width, else a model exactly as good as the champion could never pass. Set per key: "
        "--set gate.champion_margins=count_exact:0.04."))
    bootstrap_draws: int = field(default=2000, metadata=_help(
        "Resamples of the shared boards for the paired candidate-vs-champion intervals."))
    bootstrap_level: float = field(default=0.9, metadata=_help(
        "Two-sided level of the paired intervals (0.9: each end is a 5 % one-sided bound)."))
    bootstrap_seed: int = field(default=0, metadata=_help(
        "Random seed of the paired bootstrap, so the same two models get the same verdict."))


@dataclass
class ServeConfig:
    host: str = field(default="127.0.0.1", metadata=_help(
        "Address `defectqa serve` listens on (--host overrides); 127.0.0.1 = this machine only."))
    port: int = field(default=8000, metadata=_help(
        "TCP port `defectqa serve` listens on (--port overrides)."))
    max_upload_mb: float = field(default=10.0, metadata=_help(
        "Largest accepted image upload, in MB, of each of board and template; larger ones get HTTP 413."))
    max_pixels: int = field(default=4096 * 4096, metadata=_help(
        "Largest accepted image area, in pixels (DeepPCB boards are 640 x 640); larger ones get HTTP 413."))
    max_question_chars: int = field(default=500, metadata=_help(
        "Longest accepted question, in characters; longer ones get HTTP 400."))
    reload_interval_s: float = field(default=10.0, metadata=_help(
        "How often, in seconds, the service checks the registry for a newly promoted champion."))
    max_batch: int = field(default=8, metadata=_help(
        "Most concurrent requests answered together in one model call (1: one request per call)."))
    batch_wait_ms: float = field(default=5.0, metadata=_help(
        "How long, in milliseconds, a request that finds the model idle waits for others to join its batch."))
    blur_check: bool = field(default=False, metadata=_help(
        "Answer with the blur-consistency check (eval.blur_check_*): each board is also asked as a blurred copy, "
        "which costs latency; the flow's evaluation, and so the gate, judges candidates as served. Why it is off: "
        "docs/RESULTS.md, \"Why some defaults are what they are\"."))


@dataclass
class WaferConfig:
    """The wafer line's pattern branch (components/model/wafer_pattern.py) and its training
    (components/train/wafer_pattern.py). Its labels are the wafer line's classes (lines/wafer.yaml
    `words`, data.classes)."""
    input_size: int = field(default=64, metadata=_help(
        "Side, in pixels, every bin map is area-resized to (its failing / passing / on-wafer shares per pixel)."))
    patch_size: int = field(default=8, metadata=_help(
        "Side, in input pixels, of one vision patch; input_size must be a multiple of twice it."))
    vision_hidden: int = field(default=64, metadata=_help(
        "Width of the pattern branch's vision tower (its MLP is 4x this)."))
    vision_depth: int = field(default=2, metadata=_help(
        "Transformer blocks of the pattern branch's vision tower."))
    vision_heads: int = field(default=2, metadata=_help(
        "Attention heads of the pattern branch's vision tower."))
    head_channels: int = field(default=64, metadata=_help(
        "Channels of the pattern head's convolutional trunk on the patch grid."))
    steps: int = field(default=3000, metadata=_help(
        "Optimizer steps of the pattern branch (1500: val macro F1 0.847-0.858, worst recall 0.48-0.54; 3000: 0.863, "
        "0.577; benchmarks/wafer_pattern.py)."))
    batch_size: int = field(default=64, metadata=_help(
        "Maps per step."))
    lr: float = field(default=1e-3, metadata=_help(
        "Peak AdamW learning rate (linear warm-up over warmup_share of the steps, then cosine to zero)."))
    warmup_share: float = field(default=0.05, metadata=_help(
        "Share of the steps the learning rate warms up over."))
    weight_decay: float = field(default=0.05, metadata=_help(
        "AdamW weight decay."))
    balance_power: float = field(default=0.5, metadata=_help(
        "Maps are drawn with weight count(label)^-power: 0 draws as the data is (mostly None), 1 draws every label "
        "equally often."))
    calib_share: float = field(default=0.1, metadata=_help(
        "Share of the training maps (by a stable hash of the map id) kept out of training to fit the temperature "
        "that calibrates the confidences."))
    views: int = field(default=8, metadata=_help(
        "Flips / quarter turns of a map the branch's logits are averaged over when it reads one (1: the map as it "
        "is; 8: all); the temperature is fitted on the same average (README, \"The wafer line\")."))
    evidence_folds: int = field(default=2, metadata=_help(
        "Folds of the accepted maps (by map id) for the language model's evidence: each fold's evidence comes "
        "from a branch trained on the other folds, so the model learns its decision on evidence like that of a "
        "new map (1: the final branch's evidence on its own training maps, surer than on new ones). Costs one "
        "branch training per fold."))
    seed: int = field(default=0, metadata=_help(
        "Seed of the initial weights, the draws and the augmentation."))
    lm_hidden: int = field(default=64, metadata=_help(
        "Width of the wafer language model (a Qwen3 decoder from config; its MLP is 4x this)."))
    lm_layers: int = field(default=2, metadata=_help(
        "Decoder layers of the wafer language model."))
    lm_heads: int = field(default=2, metadata=_help(
        "Attention heads of the wafer language model."))
    evidence_top: int = field(default=3, metadata=_help(
        "How many of the pattern branch's likeliest labels (with their probability bucket) the language model "
        "reads beside the question."))
    lm_maps: int = field(default=6000, metadata=_help(
        "Training maps (a stable draw of the accepted ones) the language model's QA pairs are made from."))
    lm_balance_power: float = field(default=0.45, metadata=_help(
        "The language model's maps are drawn (with replacement) with weight count(label)^-power: 0 draws as the "
        "data is (mostly None). It sets where the decision falls between a rare pattern and None (README, "
        "\"The wafer line\")."))
    questions_per_map: int = field(default=2, metadata=_help(
        "QA pairs per map, each of a kind drawn at random (qa/wafer_vocab.KINDS)."))
    off_share: float = field(default=0.05, metadata=_help(
        "Share of QA pairs whose question is not about the map (the reading [OFF])."))
    embellish_share: float = field(default=0.5, metadata=_help(
        "Share of the language model's training questions wrapped as people type them (a lead, a request "
        "around it, a filler phrase, lower case, no question mark: qa/generate.embellish)."))
    word_dropout: float = field(default=0.15, metadata=_help(
        "Chance that a training question's word, other than the words that say its kind (qa/wafer_vocab.KEY_WORDS) "
        "and the asked pattern's name, is replaced by an unknown word: new words in a question then read as filler."))
    off_word_dropout: float = field(default=0.5, metadata=_help(
        "The same for off-topic training questions: a question of words the model never saw reads as not about "
        "the map."))
    lm_name_dropout: float = field(default=0.15, metadata=_help(
        "Chance that a word of a presence question's pattern name is replaced by an unknown word (one word always "
        "kept): a name the model knows only in part is read from the words it knows (qa/wafer_generate.hide_name)."))
    lm_unknown_name_share: float = field(default=0.1, metadata=_help(
        "Share of presence questions whose pattern name is wholly unknown to the model; they ask about the branch's "
        "likeliest pattern, which the answer names (qa/wafer_generate module doc), rather than reading as off-topic."))
    lm_kind_floor: float = field(default=0.0, metadata=_help(
        "At reading time, when the likeliest question kind (off-topic included) has a probability below this, the "
        "question is read as asking for the pattern: a question about the map whose kind is unclear gets the "
        "map's pattern (0: never)."))
    sft_steps: int = field(default=1200, metadata=_help(
        "trl SFT steps of the wafer language model (600 -> 1200 with the broader phrasings: dev read accuracy on "
        "unseen wordings 0.86 -> 0.93)."))
    sft_batch: int = field(default=32, metadata=_help(
        "QA pairs per SFT step."))
    sft_lr: float = field(default=2e-3, metadata=_help(
        "Peak SFT learning rate (cosine, 5 % warm-up)."))
    dpo_steps: int = field(default=100, metadata=_help(
        "trl DPO steps on the preference pairs (0: no DPO)."))
    dpo_batch: int = field(default=32, metadata=_help(
        "Preference pairs per DPO step."))
    dpo_lr: float = field(default=2e-4, metadata=_help(
        "DPO learning rate."))
    dpo_beta: float = field(default=0.1, metadata=_help(
        "DPO beta: how far the tuned model may move from the SFT model."))
    bundled_train: str = field(default="../shared/data/wm811k/train.npz", metadata=_help(
        "The bundled WM-811K train part (.npz), replayed as monthly drops (`defectqa retrain --line wafer "
        "--bundled-month`, data/wafer_drop.WAFER_MONTHS)."))
    heldout_maps: str = field(default="../shared/data/wm811k/val.npz", metadata=_help(
        "The maps the gate judges every wafer candidate and the champion on (.npz, never trained on): the "
        "bundled val part by default."))
    latency_questions: int = field(default=200, metadata=_help(
        "Questions evaluation answers one at a time, end to end, to measure latency (p50, p95)."))


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig, metadata=_help(
        "Where state lives: work folder, bundled data, DVC remote, MLflow tracking."))
    data: DataConfig = field(default_factory=DataConfig, metadata=_help(
        "What a drop must look like and how its boards are split into train / calib / held-out."))
    line: LineConfig = field(default_factory=LineConfig, metadata=_help(
        "The product line (lines/<name>.yaml, `--line`): its inspector words, accepted image sizes and reference "
        "mode."))
    qa: QAConfig = field(default_factory=QAConfig, metadata=_help(
        "How boxes become question-answer and preference pairs."))
    model: ModelConfig = field(default_factory=ModelConfig, metadata=_help(
        "The model's sizes, its spatial head and its refiner."))
    train: TrainConfig = field(default_factory=TrainConfig, metadata=_help(
        "Spatial branch, refiner, warm-up, SFT and DPO training."))
    eval: EvalConfig = field(default_factory=EvalConfig, metadata=_help(
        "How a model is evaluated: questions, matching, latency, blur check, robustness."))
    gate: GateConfig = field(default_factory=GateConfig, metadata=_help(
        "What a candidate must reach, and how it is compared with the champion, to be promoted."))
    serve: ServeConfig = field(default_factory=ServeConfig, metadata=_help(
        "The inspector's web service: address, input limits, batching, champion reloads."))
    wafer: WaferConfig = field(default_factory=WaferConfig, metadata=_help(
        "The wafer line's pattern branch and its training."))
    registered_model: str = field(default="defect-vlm", metadata=_help(
        "Name of the model in the MLflow registry (aliases champion / challenger), set by the line file: "
        "defect-vlm-<line>, and defect-vlm for pcb."))
    experiment: str = field(default="defectqa", metadata=_help(
        "MLflow experiment the runs are kept in."))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Flattened `section.key` view, for logging as MLflow params."""
        out: dict[str, Any] = {}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                out.update({f"{section}.{k}": v for k, v in values.items()})
            else:
                out[section] = values
        return out


def _coerce(current: Any, raw: Any, where: str) -> Any:
    """Turn a YAML/CLI value into the type of the default it replaces."""
    if isinstance(current, bool):
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes", "on"):
            return True
        if str(raw).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where}: expected true/false, got {raw!r}")
    if isinstance(current, dict):
        # Merged over the defaults, so setting one key keeps the others; "a:1,b:2" from the CLI.
        if isinstance(raw, str):
            raw = dict(item.split(":", 1) for item in raw.split(",") if item.strip())
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping, got {raw!r}")
        kind = type(next(iter(current.values()), ""))
        return {**current, **{str(k).strip(): _coerce(kind(), v, f"{where}.{k}") for k, v in raw.items()}}
    if isinstance(current, tuple):
        if isinstance(raw, str):
            raw = [s.strip() for s in raw.split(",") if s.strip()]
        return tuple(raw)
    try:
        return type(current)(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: expected {type(current).__name__}, got {raw!r}") from exc


def apply(cfg: Config, key: str, raw: Any) -> None:
    """Set `section.key` (or a top-level key) on cfg, with a clear error for unknown names."""
    if key in FILE_ONLY:
        raise ValueError(f"{key} is the line file's (lines/{cfg.line.name}.yaml): edit it there, or pick another "
                         "line with --line")
    parts = key.split(".")
    target: Any = cfg
    for part in parts[:-1]:
        if not hasattr(target, part):
            raise ValueError(f"unknown config section {part!r} in {key!r}")
        target = getattr(target, part)
    name = parts[-1]
    if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
        raise ValueError(f"unknown config key {key!r}")
    setattr(target, name, _coerce(getattr(target, name), raw, key))


def apply_line(cfg: Config, line: LineFile) -> None:
    """Set the line file's values on cfg: its section, its classes, its model name, its gate thresholds."""
    cfg.line = line.line
    cfg.paths.line = line.line.name
    cfg.data.classes = line.classes
    cfg.registered_model = line.registered_model
    for key, value in line.gate.items():
        try:
            apply(cfg, f"gate.{key}", value)
        except ValueError as exc:
            raise LineError(f"{line.where}: field 'gate.{key}': {exc}") from exc


def load(params_file: str | Path | None = "params.yaml", overrides: list[str] | None = None,
         line: str | Path = DEFAULT_LINE) -> Config:
    """Defaults, then the line file (a name in lines/ or a path), then params.yaml (if present),
    then `key=value` overrides."""
    import yaml

    cfg = Config()
    apply_line(cfg, read_line(line))
    if params_file and Path(params_file).exists():
        data = yaml.safe_load(Path(params_file).read_text()) or {}
        for section, values in data.items():
            if isinstance(values, dict):
                for k, v in values.items():
                    apply(cfg, f"{section}.{k}", v)
            else:
                apply(cfg, section, values)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value")
        k, v = item.split("=", 1)
        apply(cfg, k.strip(), v.strip())
    check_line(cfg.line, f"line {cfg.line.name} (after params.yaml and --set)")
    return cfg


def other_lines(cfg: Config, params_file: str | Path | None, overrides: list[str] | None) -> dict[str, Config]:
    """The config of every other line in lines/ (same params.yaml and overrides): what a service
    that follows champions also answers for."""
    from components.line import known_lines

    return {name: load(params_file, overrides, name) for name in known_lines() if name != cfg.line.name}


def dumps(cfg: Config) -> str:
    return json.dumps(cfg.to_dict(), indent=2, default=str)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def sections() -> tuple[str, ...]:
    """The names of the config's sections (paths, data, ...), in declaration order."""
    return tuple(f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(_default(f)))


def describe(cfg: Config, section: str | None = None) -> list[dict[str, Any]]:
    """Every key of cfg (or of one section) as {key, value, default, type, help}, in declaration
    order: `section.key` for section fields, the bare name for top-level ones (all sections only)."""
    names = sections()
    if section is not None and section not in names:
        raise ValueError(f"unknown config section {section!r}; sections: {', '.join(names)}")
    rows: list[dict[str, Any]] = []
    for f in dataclasses.fields(cfg):
        if f.name in names:
            if section in (None, f.name):
                part = getattr(cfg, f.name)
                rows += [_row(f"{f.name}.{g.name}", g, getattr(part, g.name)) for g in dataclasses.fields(part)]
        elif section is None:
            rows.append(_row(f.name, f, getattr(cfg, f.name)))
    return rows


def _row(key: str, f: dataclasses.Field, value: Any) -> dict[str, Any]:
    return {"key": key, "value": value, "default": _default(f), "type": str(f.type), "help": f.metadata.get("help", "")}
