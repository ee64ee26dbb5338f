"""The pipeline's stages, each named once: its folder in a run, the stages it reads, the
code it runs and the config values it reads.

The run folder's name (`run_key`), the stage folders every caller opens (`RunLayout`),
the CLI's `defectqa stage NAME` and `dvc.yaml` (`dvc_yaml`, checked by a test) all come
from `STAGES`. A test records which config values each stage really reads while it trains a
tiny model and fails when one is missing from its `reads`. A value the product line sets
(`line.words`, `data.classes`) is a DVC param of the default line's file, lines/pcb.yaml, not
of params.yaml (which does not repeat it).
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.config import DATASET_VERSION_FILE, Config
from components.line import DEFAULT_LINE, file_key, line_path

REPO = Path(__file__).resolve().parents[1]

SPLIT = ("data.holdout_groups", "data.calib_groups", "data.holdout_share", "data.calib_share")
"""What decides which boards land in train / calib / eval (components/data/split.py)."""
LM_BOARDS = (*SPLIT, "train.lm_split")
"""What decides the boards the language model learns on (stages.lm_samples)."""
WARM = ("train.warm_start", "train.warm_start_share", "train.warm_start_lr_share")
"""What a warm start reads (train/warm_start.py): every training stage that loads or trains weights."""


@dataclass(frozen=True)
class Stage:
    name: str
    """What the CLI (`defectqa stage NAME`), DVC and the Prefect task call it."""
    folder: str
    """Its folder in a run: `<run>/<folder>/` (a model stage writes `<folder>/model/`)."""
    after: tuple[str, ...]
    """Stages whose folders it reads."""
    run: str
    """The function that runs it (`module.function`); what it imports is its DVC code deps."""
    reads: tuple[str, ...]
    """Config values it reads: `section.key`, or a whole `section`."""
    trains: bool = True
    """Part of training, so part of the run folder's identity (evaluation is not)."""
    model: bool = True
    """It writes a model folder, `<folder>/model/`."""


_RUNNER = "components.train.stages"

STAGES: tuple[Stage, ...] = (
    Stage("qa", "qa", (), f"{_RUNNER}.make_qa",
          ("qa", "data.classes", "line.words", "line.items", *LM_BOARDS), model=False),
    Stage("spatial", "spatial", (), f"{_RUNNER}.run_spatial",
          ("model", "data.classes", "line.words", "line.items", "eval.iou", *SPLIT,
           "train.lm_split", "train.seed", "train.threads",
           "train.spatial_steps", "train.spatial_minutes", "train.spatial_max_epochs", "train.spatial_batch", "train.spatial_lr",
           "train.spatial_template_share", "train.spatial_no_template_share", "train.bf16",
           "train.refine_views", "train.refine_epochs", "train.refine_batch", "train.refine_lr",
           "train.refine_box_weight", "train.refine_jitter", "train.refine_jitter_shift",
           "train.refine_jitter_min_scale", "train.refine_jitter_max_scale", *WARM)),
    Stage("sft", "sft", ("spatial", "qa"), f"{_RUNNER}.run_sft",
          ("data.classes", "line.words", "line.items", "model.input_size", "eval.iou", *LM_BOARDS, "train.seed",
           "train.threads", "train.warmup_steps", "train.warmup_batch", "train.warmup_lr", "train.warmup_word_dropout",
           "train.warmup_off_topic_word_dropout",
           "train.warmup_length_groups",
           "train.warmup_reading_batch", "qa.out_of_scope_share", "qa.embellish_share",
           "train.sft_epochs", "train.sft_max_steps", "train.sft_batch", "train.sft_lr", "train.sft_lora",
           "train.lora_r", "train.lora_alpha", *WARM)),
    Stage("dpo", "dpo", ("sft", "qa"), f"{_RUNNER}.run_dpo",
          ("data.classes", "model.input_size", "eval.iou", *LM_BOARDS, "train.seed", "train.threads",
           "train.dpo_max_steps", "train.dpo_batch", "train.dpo_lr", "train.dpo_beta", "train.lora_r",
           "train.lora_alpha", *WARM)),
    Stage("calibrate", "calibrated", ("dpo",), f"{_RUNNER}.run_calibrate",
          ("data.classes", *SPLIT, "eval.iou", "eval.question", "eval.max_images", "eval.batch_size",
           "eval.ece_bins", "train.calibration", "train.calibration_prior")),
    Stage("quantize", "int8", ("calibrate",), f"{_RUNNER}.run_quantize", ()),
    Stage("evaluate", "eval", ("quantize",), "components.evaluation.run.evaluate_model",
          ("eval", "data.classes", "line.heldout_words", "line.items", *SPLIT, "serve.blur_check"), trains=False,
          model=False),
)

BY_NAME = {s.name: s for s in STAGES}
MODEL_STAGES = tuple(s.name for s in STAGES if s.model)
"""The stages that write a model, in training order."""


def stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}")
    return BY_NAME[name]


@dataclass(frozen=True)
class RunLayout:
    """Where each stage of one run keeps its files: `<root>/<stage folder>/` (flow runs:
    `<workdir>/runs/<run_key>`; DVC: `<workdir>/pipeline`)."""
    root: Path

    def dir(self, name: str) -> Path:
        return Path(self.root) / stage(name).folder

    def model(self, name: str) -> Path:
        """The model folder a model stage writes."""
        if not stage(name).model:
            raise ValueError(f"stage {name!r} writes no model; model stages: {', '.join(MODEL_STAGES)}")
        return self.dir(name) / "model"

    def eval(self, model: str = "") -> Path:
        """Evaluation output, per evaluated model in a flow run (`eval/int8`, `eval/champion`)."""
        return self.dir("evaluate") / model if model else self.dir("evaluate")


# ---- run identity -----------------------------------------------------------------------


def value(cfg: Config, key: str) -> Any:
    target: Any = cfg
    for part in key.split("."):
        target = getattr(target, part)
    return target


def training_reads() -> tuple[str, ...]:
    """Every config value a training stage reads (sorted, each once)."""
    return tuple(sorted({k for s in STAGES if s.trains for k in s.reads}))


def training_code() -> list[str]:
    """Every repo file a training stage runs (what dvc.yaml lists as their code deps)."""
    return sorted({f for s in STAGES if s.trains for f in code_files(s.run)})


def run_key(cfg: Config, dataset_version: str) -> str:
    """The run folder's name: the dataset version + a hash of every config value training
    reads and of the code it runs. Change either and the stages train again in a new folder
    (as `dvc repro` would); change anything else (the gate, serving) and the finished run is
    reused."""
    shaping = {k: value(cfg, k) for k in training_reads()}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=_plain).encode())
    for name in training_code():
        digest.update(name.encode() + (REPO / name).read_bytes())
    return f"{dataset_version[:12]}-{digest.hexdigest()[:8]}"


def _plain(v: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else str(v)


# ---- dvc.yaml -----------------------------------------------------------------------------

def module_file(module: str) -> Path | None:
    """The repo file of a module name (`components.qa.generate` -> components/qa/generate.py)."""
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(nodes) -> set[str]:
    """components/ modules named by the import statements among nodes."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "components" and module_file(n))
    return found


def imports_of(path: Path) -> set[str]:
    """The components/ modules a file imports, at module level or inside functions."""
    return _imported(ast.walk(ast.parse(path.read_text())))


def entry_imports(entry: str) -> set[str]:
    """What a function needs: its module's module-level imports, and the imports inside it
    and inside the same module's functions it calls (`components.train.stages.run_sft`)."""
    module, func = entry.rsplit(".", 1)
    tree = ast.parse(module_file(module).read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    found, seen, todo = _imported(tree.body), set(), [func]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        nodes = list(ast.walk(funcs[name]))
        found |= _imported(nodes)
        todo.extend(n.id for n in nodes if isinstance(n, ast.Name) and n.id in funcs)
    return found


def code_files(entry: str) -> list[str]:
    """Repo-relative files a stage's entry function runs: what it imports, followed through
    components/ (empty `__init__.py` files left out)."""
    own = module_file(entry.rsplit(".", 1)[0])
    seen: set[Path] = {own}  # its own module: only what entry_imports found, not every function's imports
    todo = [module_file(m) for m in entry_imports(entry)]
    while todo:
        path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(module_file(m) for m in imports_of(path))
    return sorted(str(p.relative_to(REPO)) for p in seen if p.stat().st_size)


def dvc_params(reads: tuple[str, ...]) -> list:
    """A stage's DVC params: params.yaml keys, then the line-file fields the line's values come
    from (`{lines/pcb.yaml: [words]}`; DVC reads them there)."""
    own = [k for k in dict.fromkeys(reads) if file_key(k) is None]
    from_line = list(dict.fromkeys(file_key(k) for k in reads if file_key(k) is not None))
    line = str(line_path(DEFAULT_LINE).relative_to(REPO))
    return own + ([{line: from_line}] if from_line else [])


def dvc_yaml(workdir: str = ".defectqa") -> str:
    """dvc.yaml for the stages, run by `defectqa stage NAME` into `<workdir>/pipeline`."""
    import yaml

    layout = RunLayout(Path(workdir) / "pipeline")
    stages = {}
    for s in STAGES:
        deps = [f"{workdir}/{DATASET_VERSION_FILE}", *(str(layout.dir(a)) for a in s.after),
                *code_files(s.run)]
        entry: dict[str, Any] = {"cmd": f"defectqa stage {s.name}", "deps": deps}
        if s.reads:
            entry["params"] = dvc_params(s.reads)
        if s.trains:
            entry["outs"] = [str(layout.dir(s.name))]
        else:
            entry["outs"] = [str(layout.eval() / "report.html")]
            entry["metrics"] = [{str(layout.eval() / "metrics.json"): {"cache": False}}]
        stages[s.name] = entry
    header = ("# Generated from components/pipeline.py by `defectqa dvc-yaml`; do not edit (a test checks it).\n"
              "# The pipeline as DVC stages over the accepted data (`.defectqa/data` is the data's own DVC repo;\n"
              "# its dataset_version.txt changes whenever a month is accepted). `dvc repro` reruns only the\n"
              "# stages whose deps or params changed. The Prefect flow runs the same components.\n")
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


WAFER_CODE = ("components/train/wafer_pattern.py", "components/train/wafer_lm.py", "components/model/wafer_pattern.py",
              "components/model/wafer_lm.py", "components/qa/wafer_generate.py", "components/qa/wafer_vocab.py",
              "components/qa/wafer_grammar.py")
"""The code a wafer model's training runs: a change to any of it trains again."""


def wafer_run_key(cfg: Config, dataset_version: str) -> str:
    """A wafer line run folder's name: the dataset version + a hash of what its training reads
    (the wafer section, the labels and their words, the items) and of WAFER_CODE."""
    shaping = {"wafer": asdict(cfg.wafer), "classes": cfg.data.classes, "words": cfg.line.words,
               "items": cfg.line.items}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=_plain).encode())
    for name in WAFER_CODE:
        digest.update(name.encode() + (REPO / name).read_bytes())
    return f"{dataset_version[:12]}-{digest.hexdigest()[:8]}"
